"""SQLAlchemy 2 tables and queries, Alembic migrations; SQLite by default, PostgreSQL too."""

from conveyor.store.db import Store, open_store

__all__ = ["Store", "open_store"]
