"""0003 -> 0004: rollbacks become a column (a flow node named rollback-* stays a flow node),
releases the engine had work for are due at once, and back again."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import command

from conveyor.store import migrate
from conveyor.store.db import open_store
from conveyor.store.migrate import config, current, downgrade, upgrade

AT = datetime(2026, 1, 1, tzinfo=UTC)


def test_upgrade_from_0003_marks_rollbacks_and_due_releases(tmp_path: Path) -> None:
    store = open_store("sqlite:///" + str(tmp_path / "conveyor.db"), migrate=False)
    engine = store.engine
    try:
        with engine.begin() as connection:
            command.upgrade(config(connection), "0003")
            insert_release = sa.text(
                "INSERT INTO releases (id, product, version, artifacts, labels, status,"
                " created_by, created_at, hooks_done, generation, message)"
                " VALUES (:id, 'web', :version, '{}', '{}', :status, 'me', :at, '[]', 0, '')"
            )
            connection.execute(
                insert_release, {"id": 1, "version": "1.0.0", "status": "running", "at": AT}
            )
            connection.execute(
                insert_release, {"id": 2, "version": "0.9.0", "status": "succeeded", "at": AT}
            )
            connection.execute(
                insert_release, {"id": 3, "version": "0.8.0", "status": "succeeded", "at": AT}
            )
            insert_promotion = sa.text(
                "INSERT INTO promotions (id, release_id, node, environment, state, state_since,"
                " policy, cursor, generation, wait_reason, message, fail_hooks_pending)"
                " VALUES (:id, :release, :node, :env, :state, :at, :policy, 0, 0, '', '', false)"
            )
            rows = [
                # A flow whose environment (and so node) is called rollback-eu.
                (1, 1, "rollback-eu", "rollback-eu", "waiting", {"body": {}}),
                # A real rollback: its policy snapshot says so.
                (
                    2,
                    2,
                    "rollback-1",
                    "prod",
                    "running",
                    {"body": {}, "rollback": {"from": "1.0.0"}},
                ),
                (3, 3, "prod", "prod", "succeeded", {"body": {}}),
            ]
            for pid, release, node, env, state, policy in rows:
                connection.execute(
                    insert_promotion,
                    {
                        "id": pid,
                        "release": release,
                        "node": node,
                        "env": env,
                        "state": state,
                        "at": AT,
                        "policy": json.dumps(policy),
                    },
                )

        upgrade(engine)
        assert current(engine) == migrate.head()
        with engine.connect() as connection:
            marked = dict(connection.execute(sa.text("SELECT id, rollback FROM promotions")).all())
            due = dict(connection.execute(sa.text("SELECT id, next_look_at FROM releases")).all())
        assert {k: bool(v) for k, v in marked.items()} == {1: False, 2: True, 3: False}
        # Running, and at rest but for its running rollback: due; at rest: not.
        assert due[1] is not None and due[2] is not None and due[3] is None

        downgrade(engine, "0003")
        with engine.connect() as connection:
            columns = {c["name"] for c in sa.inspect(connection).get_columns("promotions")}
        assert "rollback" not in columns
        assert "engine_leases" not in sa.inspect(engine).get_table_names()
    finally:
        store.close()
