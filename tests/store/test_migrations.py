"""The Alembic revisions build exactly the schema of tables.py, repeatably and quietly."""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from conveyor.clock import ManualClock
from conveyor.engine.service import Conveyor
from conveyor.health.columnar import us
from conveyor.health.timeline import HealthState, Report, Weekends, evaluate
from conveyor.spec import load_text
from conveyor.store import migrate
from conveyor.store.db import open_store
from conveyor.store.migrate import config, current, downgrade, upgrade
from conveyor.store.tables import Base, HealthNodeRow, HealthReportRow, UTCDateTime

TABLES = {
    "resources",
    "releases",
    "promotions",
    "task_runs",
    "gate_results",
    "audit_events",
    "health_reports",
    "health_nodes",
    "engine_leases",
}
# Added by 0005.
ACCESS_TABLES = {
    "users",
    "group_members",
    "grants",
    "api_tokens",
    "approvals",
    "notification_outbox",
}
TABLES |= ACCESS_TABLES


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    """An empty SQLite file, with the store's own pragmas (foreign keys on, WAL)."""
    store = open_store("sqlite:///" + str(tmp_path / "conveyor.db"), migrate=False)
    yield store.engine
    store.close()


def diff(engine: sa.Engine, metadata: sa.MetaData) -> list[Any]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))


def table_names(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def add_resource(engine: sa.Engine) -> None:
    """One resource row, written with plain SQL (the ORM may be ahead of the schema)."""
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO resources (kind, name, revision, document, deleted, source,"
                " applied_by, applied_at) VALUES ('flow', 'web', 1, '{}', false, '', 'me', :at)"
            ),
            {"at": datetime(2026, 1, 1, tzinfo=UTC)},
        )


def test_models_match_migrations(engine: sa.Engine) -> None:
    upgrade(engine)
    assert table_names(engine) == TABLES | {"alembic_version"}
    assert diff(engine, Base.metadata) == []


def _copy() -> tuple[sa.MetaData, dict[str, sa.Table]]:
    """Base.metadata's tables in a metadata of their own, to be changed freely."""
    metadata = sa.MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(metadata)
    return metadata, dict(metadata.tables)


def _add_column(tables: dict[str, sa.Table]) -> None:
    tables["releases"].append_column(sa.Column("extra", sa.Text(), nullable=True))


def _flip_nullable(tables: dict[str, sa.Table]) -> None:
    tables["releases"].c.flow.nullable = False


def _change_length(tables: dict[str, sa.Table]) -> None:
    tables["resources"].c.name.type = sa.String(64)


def _change_type(tables: dict[str, sa.Table]) -> None:
    tables["audit_events"].c.after.type = sa.Text()


def _drop_index(tables: dict[str, sa.Table]) -> None:
    table = tables["task_runs"]
    table.indexes.discard(next(i for i in table.indexes if i.name == "ix_task_runs_status"))


def _add_index(tables: dict[str, sa.Table]) -> None:
    sa.Index("ix_releases_product", tables["releases"].c.product)


def _add_unique(tables: dict[str, sa.Table]) -> None:
    tables["audit_events"].append_constraint(sa.UniqueConstraint("prev_hash"))


def _add_foreign_key(tables: dict[str, sa.Table]) -> None:
    tables["gate_results"].append_constraint(
        sa.ForeignKeyConstraint(["generation"], ["releases.id"])
    )


def _add_table(tables: dict[str, sa.Table]) -> None:
    metadata = tables["releases"].metadata
    sa.Table("locks", metadata, sa.Column("id", sa.Integer, primary_key=True))


@pytest.mark.parametrize(
    "change",
    [
        _add_column,
        _flip_nullable,
        _change_length,
        _change_type,
        _drop_index,
        _add_index,
        _add_unique,
        _add_foreign_key,
        _add_table,
    ],
)
def test_models_match_migrations_can_fail(
    engine: sa.Engine, change: Callable[[dict[str, sa.Table]], None]
) -> None:
    """The comparison above notices each kind of drift it is there to catch."""
    upgrade(engine)
    metadata, tables = _copy()
    assert diff(engine, metadata) == []
    change(tables)
    assert diff(engine, metadata) != []


def test_upgrade_is_idempotent(engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    upgrade(engine)
    add_resource(engine)

    def must_not_run(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("alembic ran an upgrade on a database already at head")

    monkeypatch.setattr(command, "upgrade", must_not_run)
    upgrade(engine)
    upgrade(engine)
    monkeypatch.undo()
    # And alembic's own upgrade to head, past the shortcut, is a no-op too.
    with engine.begin() as connection:
        command.upgrade(config(connection), "head")

    assert current(engine) == migrate.head()
    assert diff(engine, Base.metadata) == []
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT name FROM resources")).scalars().all() == ["web"]


def test_downgrade_to_base_and_back(engine: sa.Engine) -> None:
    upgrade(engine)
    downgrade(engine, "base")
    assert table_names(engine) - {"alembic_version"} == set()
    assert current(engine) is None

    upgrade(engine)
    assert table_names(engine) == TABLES | {"alembic_version"}
    assert current(engine) == migrate.head()
    assert diff(engine, Base.metadata) == []


def test_current(engine: sa.Engine) -> None:
    assert current(engine) is None
    upgrade(engine)
    assert current(engine) == migrate.head() == "0006"


def test_open_store_migrates_to_head(tmp_path: Path) -> None:
    store = open_store("sqlite:///" + str(tmp_path / "opened.db"))
    try:
        assert current(store.engine) == migrate.head()
        assert diff(store.engine, Base.metadata) == []
    finally:
        store.close()


def test_upgrade_is_quiet(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """Even with the root logger at INFO, alembic says nothing on a normal run."""
    with caplog.at_level(logging.INFO):
        upgrade(engine)
        upgrade(engine)
        current(engine)
        downgrade(engine, "base")
        upgrade(engine)
    assert [r.getMessage() for r in caplog.records if r.name.startswith("alembic")] == []
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    assert logging.getLogger("alembic").level == logging.NOTSET


def test_migrations_render_for_postgresql() -> None:
    """The revisions hold no SQLite-only SQL: offline, they render as PostgreSQL DDL."""
    cfg = config()
    cfg.set_main_option("sqlalchemy.url", "postgresql://")
    cfg.output_buffer = io.StringIO()
    command.upgrade(cfg, "head", sql=True)
    command.downgrade(cfg, "head:base", sql=True)
    ddl = cfg.output_buffer.getvalue()
    for table in TABLES:
        assert f"CREATE TABLE {table} (" in ddl
        assert f"DROP TABLE {table};" in ddl
    assert "TIMESTAMP WITH TIME ZONE" in ddl
    assert "SERIAL NOT NULL" in ddl
    assert "UNIQUE (release_id, scope, generation, stage, task)" in ddl
    assert "FOREIGN KEY(promotion_id) REFERENCES promotions (id)" in ddl


def test_concurrent_first_upgrades_take_turns(tmp_path: Path) -> None:
    """Several engines opening a new database at once: one migrates, the rest wait, none fails."""
    url = "sqlite:///" + str(tmp_path / "shared.db")
    stores = [open_store(url, migrate=False) for _ in range(6)]
    start = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def run(engine: sa.Engine) -> None:
        start.wait()
        try:
            upgrade(engine)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s.engine,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert current(stores[0].engine) == migrate.head()
    finally:
        for store in stores:
            store.close()


def test_head_constant_matches_the_newest_script() -> None:
    assert migrate.head() == migrate.HEAD


def test_upgrade_from_0001_to_0002_keeps_data_and_adds_health_reports(engine: sa.Engine) -> None:
    with engine.begin() as connection:
        command.upgrade(config(connection), "0001")
    assert current(engine) == "0001"
    assert "health_reports" not in table_names(engine)
    add_resource(engine)

    with engine.begin() as connection:
        command.upgrade(config(connection), "0002")
    assert current(engine) == "0002"
    assert table_names(engine) == TABLES - {"health_nodes", "engine_leases"} - ACCESS_TABLES | {
        "alembic_version"
    }
    indexes = {i["name"] for i in sa.inspect(engine).get_indexes("health_reports")}
    assert indexes == {"ix_health_reports_env_entity_time"}
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT name FROM resources")).scalars().all() == ["web"]

    downgrade(engine, "0001")
    assert current(engine) == "0001"
    assert "health_reports" not in table_names(engine)
    assert "resources" in table_names(engine)


# Reports as 0002 stored them: (environment, entity, node, time, live, state, version).
REPORTS_0002 = [
    ("prod", "cluster-a", "n1", datetime(2026, 1, 5, 9, tzinfo=UTC), True, "HEALTHY", "1.0.0"),
    ("prod", "cluster-a", "n2", datetime(2026, 1, 5, 9, 0, 0, 1, UTC), True, None, "1.0.0"),
    (
        "prod",
        "cluster-b",
        "n1",
        datetime(2026, 1, 5, 10, 30, 15, 999_999, UTC),
        True,
        "ERROR",
        "1.0.0",
    ),
    (
        "prod",
        "cluster-a",
        "n1",
        datetime(2026, 1, 5, 13, 7, 0, 250_000, UTC),
        False,
        "WARNING",
        "1.0.0",
    ),
    ("prod", "cluster-b", "n1", datetime(2026, 1, 5, 14, tzinfo=UTC), True, "DEFERRING", "0.9.0"),
    ("qa", "cluster-a", "n1", datetime(2026, 1, 4, 23, 59, 59, 5, UTC), True, "TERMINAL", "1.0.0"),
]
DEFINITIONS = """
apiVersion: conveyor.dev/v1
kind: Product
metadata: {name: shop}
spec: {}
---
apiVersion: conveyor.dev/v1
kind: Environment
metadata: {name: prod}
spec: {type: production}
"""


def _reports_0002() -> sa.TableClause:
    return sa.table(
        "health_reports",
        *(sa.column(c) for c in ("environment", "entity", "node")),
        sa.column("time", UTCDateTime()),
        *(sa.column(c) for c in ("live", "state", "version")),
        sa.column("received_at", UTCDateTime()),
    )


def test_upgrade_from_0002_to_0003_keeps_health_reports(tmp_path: Path) -> None:
    store = open_store("sqlite:///" + str(tmp_path / "conveyor.db"), migrate=False)
    engine = store.engine
    try:
        with engine.begin() as connection:
            command.upgrade(config(connection), "0002")
            received = datetime(2026, 1, 6, tzinfo=UTC)
            fields = ("environment", "entity", "node", "time", "live", "state", "version")
            connection.execute(
                sa.insert(_reports_0002()),
                [
                    {**dict(zip(fields, r, strict=True)), "received_at": received}
                    for r in REPORTS_0002
                ],
            )

        upgrade(engine)
        assert current(engine) == migrate.head()
        assert diff(engine, Base.metadata) == []
        with store.session() as s:
            rows = s.scalars(sa.select(HealthReportRow).order_by(HealthReportRow.id)).all()
            got = [
                (r.environment, r.entity, r.node, r.time, r.live, r.state, r.version) for r in rows
            ]
            assert got == REPORTS_0002
            assert [r.time_us for r in rows] == [us(r[3]) for r in REPORTS_0002]
            nodes = s.scalar(sa.select(sa.func.count()).select_from(HealthNodeRow))
            assert nodes == len({r[:3] for r in REPORTS_0002})

        cv = Conveyor(store, clock=ManualClock(), workdir=tmp_path)
        cv.apply(docs=load_text(DEFINITIONS, "test.yaml"))
        now = datetime(2026, 1, 6, 9, tzinfo=UTC)
        prod = [
            Report(*r[1:5], None if r[5] is None else HealthState(r[5]), r[6])
            for r in REPORTS_0002
            if r[0] == "prod"
        ]
        shown = cv.health("prod", "shop", "1.0.0", at=now)
        assert shown == evaluate(sorted(prod, key=lambda r: r.time), "1.0.0", now, Weekends())
        assert shown["cluster-a"].soak == timedelta(hours=24)

        # And back: the text columns as they were.
        downgrade(engine, "0002")
        with engine.connect() as connection:
            old = _reports_0002()
            q = sa.select(*(old.c[f] for f in fields)).order_by(sa.text("id"))
            assert [tuple(r) for r in connection.execute(q)] == REPORTS_0002
        assert "health_nodes" not in table_names(engine)
    finally:
        store.close()
