"""A copy of a PostgreSQL store in a SQLite file (for `conveyor simulate`, which replays on a
scratch copy): every table, read in one snapshot, so the copy is consistent while engines
and API processes keep writing. SQLite stores are copied with SQLite's backup API instead."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import insert, select

from conveyor.store.auditkeys import AuditKeys
from conveyor.store.db import Store, open_store
from conveyor.store.tables import Base

BATCH = 5000  # rows per read and per insert: a health history may be millions of rows


def to_sqlite(source: Store, target: Path) -> None:
    """Copy `source` (at the schema's head: it was opened) into a new SQLite file."""
    copy = open_store(f"sqlite:///{target}", audit_keys=AuditKeys(None))
    try:
        with source.read() as src, copy.session() as dst:
            for table in Base.metadata.sorted_tables:  # parents before children
                rows = src.execute(select(table)).mappings().yield_per(BATCH)
                for chunk in rows.partitions():
                    dst.execute(insert(table), [dict(row) for row in chunk])
    finally:
        copy.close()
