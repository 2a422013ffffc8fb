"""Alembic environment for Conveyor's schema.

Run through `conveyor.store.migrate`, which builds the Config in code and passes an open
connection in `config.attributes["connection"]`. No alembic.ini and no logging setup here:
configuring logging is the application's business, not the migration runner's.

Without a connection, the `sqlalchemy.url` main option is used: online it opens an engine,
offline (`sql=True`) it only needs the dialect, e.g. to print PostgreSQL DDL.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from conveyor.store.tables import Base

config = context.config
target_metadata = Base.metadata


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode copies the table instead.
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        render_as_batch=True,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if isinstance(connection, Connection):
        _configure_and_run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection in config.attributes and no sqlalchemy.url option")
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.begin() as own:
            _configure_and_run(own)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
