"""A process refuses a schema it was not built for: a newer one anywhere; an older one on
PostgreSQL, until `conveyor db upgrade` (issue 13). A SQLite file follows its Conveyor."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from conveyor.errors import SchemaMismatch
from conveyor.store import migrate
from conveyor.store.db import open_store
from conveyor.store.url import HEAD
from tests.cli import inprocess
from tests.pg import Postgres


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    open_store(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '0999'"))
    engine.dispose()
    with pytest.raises(SchemaMismatch, match="0999, newer than this Conveyor knows"):
        open_store(url)


def test_an_older_server_schema_waits_for_db_upgrade(pg: Postgres, tmp_path: Path) -> None:
    name = "older"
    with pg.admin() as con:
        con.execute(f"CREATE DATABASE {name}")
    url = f"{pg.base}/{name}"
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        command.upgrade(migrate.config(connection), "0005")
    engine.dispose()
    with pytest.raises(SchemaMismatch, match=r"older than this Conveyor's.*conveyor db upgrade"):
        open_store(url)
    said = inprocess.run(tmp_path, ["--db", url, "db", "version"]).stdout
    assert said.strip() == f"database schema 0005; this Conveyor's {HEAD}"
    done = inprocess.run(tmp_path, ["--db", url, "db", "upgrade"])
    assert done.returncode == 0 and f"at revision {HEAD} (was 0005)" in done.stdout, done
    again = inprocess.run(tmp_path, ["--db", url, "db", "upgrade"]).stdout
    assert "(already)" in again
    open_store(url).close()  # at head: opened as usual
