"""Read-only looks at a SQLite store with the standard library alone.

SQLAlchemy takes a quarter of a second to import on a small machine, longer than the whole
of `conveyor get flows` may take (bench/cli.py). The read commands that need one or two
plain queries make them here; anything else, and any database not at this code's schema
revision (it would have to be migrated first), goes through the full store.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conveyor.store.url import HEAD


@dataclass(frozen=True)
class StoredDefinition:
    """The newest revision of one definition, as stored."""

    kind: str
    name: str
    revision: int
    document: dict[str, Any]
    applied_by: str
    applied_at: datetime


class NotAtHead(Exception):
    """The database needs the full store (a migration) before it can be peeked at."""


_LATEST = """
SELECT r.kind, r.name, r.revision, r.document, r.applied_by, r.applied_at
FROM resources r
JOIN (SELECT kind, name, MAX(revision) AS rev FROM resources GROUP BY kind, name) n
  ON r.kind = n.kind AND r.name = n.name AND r.revision = n.rev
WHERE NOT r.deleted {where}
ORDER BY r.kind, r.name
"""


@contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    # mode=rw: never create the file (a typo in --db must not make an empty database).
    with closing(sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=30)) as con:
        con.execute("PRAGMA busy_timeout=30000")
        try:
            (version,) = con.execute("SELECT version_num FROM alembic_version").fetchone()
        except (sqlite3.Error, TypeError):
            raise NotAtHead(str(path)) from None
        if version != HEAD:
            raise NotAtHead(str(path))
        yield con


def definitions(path: Path, kind: str | None = None) -> list[StoredDefinition]:
    """The current definitions (of one kind), by kind and name. Raises NotAtHead."""
    where, args = ("AND r.kind = ?", (kind,)) if kind else ("", ())
    with _connect(path) as con:
        rows = con.execute(_LATEST.format(where=where), args).fetchall()
    return [
        StoredDefinition(k, n, rev, json.loads(doc), by, _utc(at))
        for k, n, rev, doc, by, at in rows
    ]


def _utc(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
