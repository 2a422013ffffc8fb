"""SQLAlchemy 2 tables and queries, Alembic migrations; SQLite by default, PostgreSQL too.

Nothing is imported here, so that `conveyor.store.peek` (the CLI's read path) does not pay
for SQLAlchemy: import `conveyor.store.db` for `Store` and `open_store`."""
