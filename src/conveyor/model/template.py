"""`${{ name.path }}` templates over a release's context.

A name that does not exist is an error, never an empty string. Values are substituted
as text into the one string that holds them; the run action turns them into single
arguments or environment variables, never into shell text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

EXPR = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")
_PATH = re.compile(r"^[A-Za-z_][\w-]*(\.[A-Za-z_0-9][\w-]*)*$")

# What may be named at all; `*` stands for keys the user defines (artifact names, labels).
SHAPE: dict[str, Any] = {
    "release": {"product": None, "version": None, "labels": {"*": None}, "id": None},
    "artifacts": {
        "*": {
            "name": None,
            "type": None,
            "ref": None,
            "repository": None,
            "digest": None,
            "version": None,
        }
    },
    "environment": {"name": None, "type": None, "labels": {"*": None}, "settings": {"*": None}},
    "product": {"name": None},
    "flow": {"name": None, "version": None},
}


class TemplateError(ValueError):
    """A template names something that does not exist or is not a value; `offset` is where
    the template starts in its string, for the column of the error."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


def references(text: str) -> list[str]:
    return [m.group(1) for m in EXPR.finditer(text)]


def check_shape(text: str, known: Mapping[str, Any] | None = None) -> None:
    """Refuse, at apply time, names that can never resolve and a `${{` never closed (it
    would otherwise run as literal text)."""
    matches = list(EXPR.finditer(text))
    unclosed = EXPR.sub(lambda m: " " * len(m.group(0)), text).find("${{")
    if unclosed >= 0:
        raise TemplateError(
            "'${{' is never closed: end the template with '}}', e.g. ${{ release.version }}",
            unclosed,
        )
    for match in matches:
        try:
            _check_name(match.group(1), known)
        except TemplateError as exc:
            raise TemplateError(str(exc), match.start()) from None


def _check_name(ref: str, known: Mapping[str, Any] | None) -> None:
    if not _PATH.match(ref):
        raise TemplateError(f"'${{{{ {ref} }}}}' is not a name: write for example release.version")
    node: Any = known or SHAPE
    walked: list[str] = []
    for part in ref.split("."):
        if not isinstance(node, Mapping):
            raise TemplateError(f"'{'.'.join(walked)}' has no field '{part}' in '{ref}'")
        if part in node:
            node = node[part]
        elif "*" in node:
            node = node["*"]
        else:
            scope = ".".join(walked) or "the template context"
            have = ", ".join(sorted(k for k in node if k != "*"))
            raise TemplateError(f"unknown name '{ref}': {scope} has {have}")
        walked.append(part)
    if isinstance(node, Mapping) and node:
        raise TemplateError(f"'{ref}' is a group, not a value: name one of its fields")


def lookup(context: Mapping[str, Any], ref: str) -> str:
    node: Any = context
    walked: list[str] = []
    for part in ref.split("."):
        if not isinstance(node, Mapping) or part not in node:
            have = sorted(node) if isinstance(node, Mapping) else []
            scope = ".".join(walked) or "the template context"
            hint = f"; {scope} has {', '.join(have)}" if have else ""
            raise TemplateError(f"unknown name '{ref}'{hint}")
        node = node[part]
        walked.append(part)
    if isinstance(node, Mapping | list):
        raise TemplateError(f"'{ref}' is a group, not a value: name one of its fields")
    return "" if node is None else str(node)


def render(text: str, context: Mapping[str, Any], sub: Callable[[str], str] | None = None) -> str:
    """Replace every `${{ }}`; `sub` may turn each value into something else (an env var)."""

    def one(match: re.Match[str]) -> str:
        value = lookup(context, match.group(1))
        return sub(value) if sub else value

    return EXPR.sub(one, text)


def render_tree(value: Any, context: Mapping[str, Any]) -> Any:
    """Render every string inside nested lists and dicts."""
    if isinstance(value, str):
        return render(value, context)
    if isinstance(value, list):
        return [render_tree(v, context) for v in value]
    if isinstance(value, dict):
        return {k: render_tree(v, context) for k, v in value.items()}
    return value


def strings_in(
    value: Any, path: tuple[str | int, ...] = ()
) -> list[tuple[tuple[str | int, ...], str]]:
    """Every string in a nested value with its path, for apply-time checks."""
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, list):
        return [x for i, v in enumerate(value) for x in strings_in(v, (*path, i))]
    if isinstance(value, dict):
        return [x for k, v in value.items() for x in strings_in(v, (*path, k))]
    return []
