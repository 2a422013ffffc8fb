"""Schema migrations, run in-process with Alembic: no alembic.ini, no logging setup.

`upgrade` is called each time a store is opened, so it is cheap and silent when the
database is already at head. The revisions live in `conveyor/store/migrations/versions`.

A new revision, after editing `tables.py` (compare against a database at the old head):

    from alembic import command
    from conveyor.store.migrate import config
    cfg = config()
    cfg.set_main_option("sqlalchemy.url", "sqlite:////tmp/at-head.db")
    command.revision(cfg, message="what changed", autogenerate=True, rev_id="0002")
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from conveyor.errors import SchemaMismatch
from conveyor.store.url import HEAD

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def config(connection: Connection | None = None) -> Config:
    """An Alembic Config built in code, optionally carrying an open connection for env.py."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head() -> str | None:
    """The newest revision id shipped with this version of Conveyor."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(config()).get_current_head()


def check(engine: Engine, upgrade_older: bool) -> None:
    """Refuse a schema this code does not know (a newer Conveyor migrated it); bring an
    older one (or an empty database) to head when `upgrade_older`, else refuse it too."""
    stamped = _stamped(engine)
    if stamped == HEAD:
        return
    if stamped is not None and stamped not in known_revisions():
        raise SchemaMismatch(
            f"the database's schema is at revision {stamped}, newer than this Conveyor knows "
            f"(up to {HEAD}): upgrade Conveyor here, as the processes that migrated it were"
        )
    if stamped is not None and not upgrade_older:
        raise SchemaMismatch(
            f"the database's schema is at revision {stamped}, older than this Conveyor's "
            f"({HEAD}): stop the other processes using it, then run `conveyor db upgrade`"
        )
    upgrade(engine)


def known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    return {r.revision for r in ScriptDirectory.from_config(config()).walk_revisions()}


def upgrade(engine: Engine) -> None:
    """Bring the database to head; does nothing when it is there already.

    Callers opening a new database at the same moment take turns: the first migrates,
    the others wait for it and then find the database at head.
    """
    if _stamped(engine) == HEAD:
        return
    from alembic import command

    target = head()
    with _alembic(), engine.begin() as connection:
        _lock(connection)
        if _current(connection) == target:
            return
        command.upgrade(config(connection), "head")


def _stamped(engine: Engine) -> str | None:
    """The revision recorded in the database, read with plain SQL (None if there is none)."""
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:
        return None


def downgrade(engine: Engine, revision: str) -> None:
    """Step the database back to `revision` ("base" drops every table)."""
    from alembic import command

    with _alembic(), engine.begin() as connection:
        _lock(connection)
        command.downgrade(config(connection), revision)


def current(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty (unmigrated) database."""
    with _alembic(), engine.connect() as connection:
        return _current(connection)


def _current(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


# Any fixed number: the PostgreSQL advisory lock that serialises Conveyor's migrations.
_PG_LOCK_KEY = 0x636F6E76


def _lock(connection: Connection) -> None:
    """Hold the database's migration lock until the transaction ends."""
    dialect = connection.dialect.name
    if dialect == "sqlite":
        # The write lock now, not at the first write: a second migrator waits here
        # (busy timeout) and then sees head, instead of failing on "table already exists".
        # Only when the driver has not begun a transaction of its own already.
        if not getattr(connection.connection.driver_connection, "in_transaction", True):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
    elif dialect == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})


# Alembic keeps the running migration in module globals (`alembic.context`, `alembic.op`),
# so two threads of one process must not run commands at once. Taken before any
# database lock, never after one, so it cannot deadlock with `_lock`.
_ALEMBIC_LOCK = threading.RLock()


@contextmanager
def _alembic() -> Iterator[None]:
    """One Alembic call at a time in this process, its INFO chatter held back.

    ("Context impl ...", "Running upgrade ..."), unless the application has set a level
    for the "alembic" logger itself; warnings still get through.
    """
    with _ALEMBIC_LOCK:
        logger = logging.getLogger("alembic")
        if logger.level != logging.NOTSET:
            yield
            return
        logger.setLevel(logging.WARNING)
        try:
            yield
        finally:
            logger.setLevel(logging.NOTSET)
