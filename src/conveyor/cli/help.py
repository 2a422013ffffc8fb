"""Help in words: parameters shown as `FILE`, `KIND`, `[NAME]`, not as `TEXT`, `PATH` or
`{kind}`.

Typer names an option's value by its click type and wraps a required argument in braces;
neither is what a person types. Its parameter classes offer no hook for this, so their
metavar methods are replaced once, here (typer is pinned in pyproject.toml, and a test,
help with no `{` nor TEXT, tells when an upgrade moves them).
"""

from __future__ import annotations

from typing import Any

from typer import core


def _argument_metavar(self: Any, ctx: Any, *, usage: bool = False) -> str:
    name = str(self.metavar or (self.name or "").upper())
    if usage and not self.required:
        name = f"[{name}]"
    return name + ("..." if self.nargs != 1 else "")


def _option_metavar(self: Any, ctx: Any) -> str:
    if self.metavar:
        return str(self.metavar)
    longest: str = max(self.opts, key=len).lstrip("-")
    return longest.upper().replace("-", "_")


def words_not_types() -> None:
    core.TyperArgument.make_metavar = _argument_metavar  # type: ignore[method-assign]
    core.TyperOption.make_metavar = _option_metavar  # type: ignore[method-assign]
