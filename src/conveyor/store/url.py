"""Where the database is, and the schema revision this code expects: both needed before
deciding whether to pay for SQLAlchemy (see peek.py), so neither imports it."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_URL = "sqlite:///conveyor.db"
# The newest revision in migrations/versions. Kept here so that opening a database already
# at head (every CLI call) does not import Alembic; a test checks it matches the scripts.
HEAD = "0006"


def database_url(db: str | None = None) -> str:
    """`--db` wins, then CONVEYOR_DATABASE_URL, then ./conveyor.db. A bare path means SQLite;
    `postgresql://...` means PostgreSQL through psycopg 3."""
    value = db or os.environ.get("CONVEYOR_DATABASE_URL") or DEFAULT_URL
    if "://" not in value:
        value = f"sqlite:///{Path(value).expanduser()}"
    for bare in ("postgresql://", "postgres://"):  # psycopg 3, whatever the URL names
        if value.startswith(bare):
            value = "postgresql+psycopg://" + value[len(bare) :]
    return value


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL; None for another database or an in-memory one."""
    if not url.startswith("sqlite"):
        return None
    path = url.split(":///", 1)[-1]
    return None if not path or path == ":memory:" else Path(path)
