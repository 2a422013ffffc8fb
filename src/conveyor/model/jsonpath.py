"""Values at dotted paths in JSON documents (`status.health`, `items[0].state`): what the
`http` action's conditions and the health probes read from an answer."""

from __future__ import annotations

import re
from typing import Any

_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
# A whole path `find` reads: keys joined by dots, `[N]` indexes.
PATH = re.compile(r"^(?:[^.\[\]]+|\[\d+\])(?:\.[^.\[\]]+|\[\d+\])*$")
MISSING: Any = object()  # not there; distinct from a JSON null


def find(document: Any, path: str) -> Any:
    """The value at `path` in `document`, or MISSING."""
    node = document
    for key, index in _PART.findall(path):
        if index:
            if not isinstance(node, list) or int(index) >= len(node):
                return MISSING
            node = node[int(index)]
        elif isinstance(node, dict) and key in node:
            node = node[key]
        else:
            return MISSING
    return node
