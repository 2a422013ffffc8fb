"""The grammar of image names (distribution's `reference` package), pure: the model checks
a product's and a release's image repositories with it at apply, and oci/reference.py
parses full references with the same patterns."""

from __future__ import annotations

import re

LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
HOST = rf"(?:{LABEL}(?:\.{LABEL})*|\[[0-9a-fA-F:.]+\])"
REGISTRY = re.compile(rf"^{HOST}(?::[0-9]{{1,5}})?$")
COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REPOSITORY = re.compile(rf"^{COMPONENT}(?:/{COMPONENT})*$")
TAG = re.compile(r"^[\w][\w.-]{0,127}$")
# ALGORITHM:ENCODED as the OCI grammar has it
DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
MAX_NAME = 255


def repository_problem(name: str) -> str | None:
    """Why `name` (`[registry/]path`, no tag, no digest) is not an image repository."""
    if not name:
        return "is empty"
    if len(name) > MAX_NAME:
        return f"is longer than {MAX_NAME} characters"
    first, sep, rest = name.partition("/")
    looks_like_host = "." in first or ":" in first or first == "localhost"
    if sep and looks_like_host:
        if not REGISTRY.match(first):
            return f"has a malformed registry host '{first}'"
        path = rest
    else:
        path = name
    if not REPOSITORY.match(path):
        return (
            f"has a malformed path '{path}': lowercase letters, digits and . _ - "
            "between them, components separated by /"
        )
    return None
