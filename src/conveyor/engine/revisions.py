"""The history of a definition: every revision as applied, and what changed between two."""

from __future__ import annotations

import difflib
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ruamel.yaml import YAML
from sqlalchemy import select
from sqlalchemy.orm import Session

from conveyor.errors import NotFound
from conveyor.store.tables import ResourceRow


@dataclass(frozen=True)
class Revision:
    """One revision of a definition, as applied (or its deletion)."""

    revision: int
    document: dict[str, Any]
    deleted: bool
    applied_by: str
    applied_at: datetime

    @property
    def yaml(self) -> str:
        return as_yaml(self.document)


def revisions(session: Session, kind: str, name: str) -> list[Revision]:
    """Every revision of one definition, oldest first; NotFound if it never existed."""
    rows = session.scalars(
        select(ResourceRow)
        .where(ResourceRow.kind == kind, ResourceRow.name == name)
        .order_by(ResourceRow.revision)
    ).all()
    if not rows:
        raise NotFound(f"{kind}/{name} was never applied (see `conveyor get {kind}`)")
    return [Revision(r.revision, r.document, r.deleted, r.applied_by, r.applied_at) for r in rows]


def as_yaml(document: dict[str, Any]) -> str:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    text = io.StringIO()
    yaml.dump(document, text)
    return text.getvalue()


def diff(old: Revision | None, new: Revision, name: str) -> str:
    """A unified diff of the two revisions' YAML (from nothing for the first)."""
    before = old.yaml.splitlines(keepends=True) if old else []
    return "".join(
        difflib.unified_diff(
            before,
            new.yaml.splitlines(keepends=True),
            f"{name} revision {old.revision}" if old else "/dev/null",
            f"{name} revision {new.revision}",
        )
    )
