"""What the spec layer needs to know of plugins, without importing them."""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel


class Catalog(Protocol):
    def gate_settings(self, kind: str) -> type[BaseModel] | None:
        """The settings model of a gate kind, or None when the kind is unknown."""
        ...

    def action_settings(self, name: str) -> type[BaseModel] | None: ...

    def gate_kinds(self) -> list[str]: ...

    def action_names(self) -> list[str]: ...
