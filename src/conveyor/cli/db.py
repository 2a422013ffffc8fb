"""`conveyor db`: the database's schema, upgraded by an admin on a server database."""

from __future__ import annotations

import typer

from conveyor.cli.common import out, state_of

db_app = typer.Typer(help="The database's schema.", no_args_is_help=True)


@db_app.command("upgrade")
def upgrade(ctx: typer.Context) -> None:
    """Bring the database's schema to this Conveyor's. A SQLite file is upgraded when it is
    opened; a PostgreSQL database waits for this (processes built for another schema refuse
    it), so upgrade Conveyor everywhere, stop the old processes, run this once, start them.

    \b
    Example:
      CONVEYOR_DATABASE_URL=postgresql://conveyor@db.internal/conveyor conveyor db upgrade
    """
    from conveyor.store import migrate
    from conveyor.store.db import open_store

    store = open_store(state_of(ctx).url, migrate=False)
    try:
        before = migrate.current(store.engine)
        migrate.check(store.engine, upgrade_older=True)
        after = migrate.current(store.engine)
    finally:
        store.close()
    was = "already" if before == after else f"was {before or 'empty'}"
    out.print(f"database schema at revision {after} ({was})", markup=False)


@db_app.command("version")
def version(ctx: typer.Context) -> None:
    """The database's schema revision, and this Conveyor's.

    \b
    Example:
      conveyor db version
    """
    from conveyor.store import migrate
    from conveyor.store.db import open_store
    from conveyor.store.url import HEAD

    store = open_store(state_of(ctx).url, migrate=False)
    try:
        current = migrate.current(store.engine)
    finally:
        store.close()
    out.print(f"database schema {current or 'empty'}; this Conveyor's {HEAD}", markup=False)
