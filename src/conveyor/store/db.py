"""Opening a store: the engine, sessions, SQLite pragmas, migrations to head."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from conveyor.errors import ConveyorError
from conveyor.store import audit, pglocks
from conveyor.store.auditkeys import AUDIT_KEYS, AuditKeys, audit_dir
from conveyor.store.migrate import check
from conveyor.store.url import database_url, sqlite_file


class Store:
    """A database with Conveyor's schema at head, and the keys of its audit trail."""

    def __init__(self, engine: Engine, audit_keys: AuditKeys) -> None:
        self.engine = engine
        self.audit_keys = audit_keys
        self._sessions = sessionmaker(engine, expire_on_commit=False, info={AUDIT_KEYS: audit_keys})
        # A server database: several engines may share it (on SQLite, one at a time).
        self.shared = engine.dialect.name == "postgresql"

    @contextmanager
    def session(self, engine_pass: bool = False) -> Iterator[Session]:
        """One unit of work: committed when the block ends, rolled back on an error.

        On PostgreSQL it holds the store lock (pglocks): exclusively, or shared for an
        `engine_pass`, whose audit events are chained as it commits."""
        with self._sessions() as session, session.begin():
            if self.shared:
                pglocks.store_lock(session, shared=engine_pass)
                if engine_pass:
                    session.info[audit.DEFERRED] = True
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A unit of work that only reads. On PostgreSQL it takes no lock and waits for no
        engine: it reads one snapshot of what was committed when it began, and the database
        refuses any write in it."""
        if not self.shared:
            with self.session() as session:
                yield session
            return
        with self._sessions() as session, session.begin():
            session.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
            yield session

    def close(self) -> None:
        self.engine.dispose()


def open_store(
    url: str | None = None, migrate: bool = True, audit_keys: AuditKeys | None = None
) -> Store:
    """The store at `url`; `audit_keys` for a copy of a store (simulate), else its own."""
    url = database_url(url)
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        path = sqlite_file(url)
        if path is not None and not path.parent.exists():
            raise ConveyorError(f"database directory {path.parent} does not exist: create it first")
        if path is not None:
            _create_private(path)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    elif url.startswith("postgresql"):
        # A dropped connection (a restarted server) is noticed before use, not mid-work.
        kwargs |= {"pool_pre_ping": True, **_pool_sizes()}
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    if migrate:
        # A SQLite file serves one machine: it follows its Conveyor. A server database is
        # shared by processes on several machines: an admin upgrades it (`conveyor db
        # upgrade`), and a process built for another schema refuses to touch it.
        check(engine, upgrade_older=not url.startswith("postgresql"))
    return Store(engine, audit_keys or AuditKeys(audit_dir(url)))


def _create_private(path: Path) -> None:
    """A new database file is readable by its owner only (0600): it holds the audit trail
    and what every task printed. SQLite gives its -wal and -shm files the same mode."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # SQLAlchemy emits BEGIN itself (below), so the driver must not open transactions.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL lets readers (`release watch`) see a consistent state while the engine writes.
    cursor.execute("PRAGMA journal_mode=WAL")
    # With WAL, NORMAL never corrupts and loses nothing when a process crashes; only a power
    # cut may drop the last commits. It saves an fsync per commit.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    """Take the write lock up front: a unit of work that reads, then writes (the audit
    chain's head, a queue count) must not interleave with another process's write."""
    conn.exec_driver_sql("BEGIN IMMEDIATE")


POOL_SIZE, POOL_OVERFLOW = 5, 10


def _pool_sizes() -> dict[str, int]:
    """A server database's connection pool per process: `$CONVEYOR_DB_POOL_SIZE` kept open,
    `$CONVEYOR_DB_MAX_OVERFLOW` more under load."""
    sizes = {}
    for key, name, default in (
        ("pool_size", "CONVEYOR_DB_POOL_SIZE", POOL_SIZE),
        ("max_overflow", "CONVEYOR_DB_MAX_OVERFLOW", POOL_OVERFLOW),
    ):
        raw = os.environ.get(name, "")
        if raw and not (raw.isdigit() and (int(raw) > 0 or key == "max_overflow")):
            raise ConveyorError(f"{name}={raw!r} is not a count of connections: give a number")
        sizes[key] = int(raw) if raw else default
    return sizes
