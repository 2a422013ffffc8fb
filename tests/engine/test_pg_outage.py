"""PostgreSQL stopped for five seconds and started again while an API process (`conveyor
serve --no-engine`) and an engine process (`conveyor engine`) have a release under way, its
task running: /readyz says so, the log says so, the
task's result (it ends during the outage) is stored once the database is back, not run
again, the release finishes and the audit trail verifies (issue 13)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from conveyor.engine.service import Conveyor
from conveyor.model.access import Role, Scope
from conveyor.store.auditkeys import AuditKeys
from conveyor.store.db import open_store
from tests.conftest import BASE, DIGEST, apply_yaml, shop_flow
from tests.pg import Postgres, postgres_server
from tests.serving import Engines, serving

# Each environment's task takes two seconds and notes that it ran.
TASK = '[sh, -c, "sleep 2; echo $0 >> ran.txt", "${{ environment.name }}"]'
FLOW = (
    shop_flow("qa").replace('["true"]', TASK)
    + """
---
apiVersion: conveyor.dev/v1
kind: PromotionPolicy
metadata: {name: qa-waits}
spec:
  selector: {environments: {names: [qa]}}
  gates: [{timed: {duration: 8s, in: dev}}]
"""
)


def until(what: str, check: Callable[[], Any], seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def own_pg() -> Iterator[Postgres]:
    """A server of this test's own: it is stopped mid-test."""
    with postgres_server() as server:
        yield server


def test_the_database_away_for_five_seconds_loses_nothing(own_pg: Postgres, tmp_path: Path) -> None:
    url = own_pg.database()
    audit = tmp_path / "audit"
    cv = Conveyor(open_store(url, audit_keys=AuditKeys(audit)), actor="local:setup")
    cv.claim()
    apply_yaml(cv, BASE + FLOW)
    cv.add_user("ci", [])
    cv.grant("user:ci", Role.PROMOTER, Scope())
    token = cv.create_token("ci", timedelta(days=1))[1]
    cv.close()
    env = {"CONVEYOR_AUDIT_DIR": str(audit)}
    engines = Engines(url, tmp_path, env)
    engines.start()
    try:
        with serving(url, tmp_path, "--no-engine", env=env, log=tmp_path / "serve.log") as site:
            api = httpx.Client(
                base_url=site, headers={"Authorization": f"Bearer {token}"}, trust_env=False
            )

            def status() -> str:
                return str(api.get("/api/v1/releases/shop@1.0.0").json()["status"])

            def ready() -> int:
                return api.get("/readyz").status_code

            body = {"product": "shop", "version": "1.0.0", "artifacts": {"web": f"r/web@{DIGEST}"}}
            assert api.post("/api/v1/releases", json=body).status_code == 201
            api.post("/api/v1/releases/shop@1.0.0/trigger", json={"flow": "main"})
            dev = "/api/v1/promotions/shop@1.0.0/dev"
            until("dev's task to run", lambda: api.get(dev).json()["state"] == "running")
            own_pg.stop()
            assert until("readyz to fail", lambda: ready() == 503, 10)
            time.sleep(5)  # the outage itself
            own_pg.start()
            until("readyz again", lambda: ready() == 200)
            assert until("the release to finish", lambda: status() == "succeeded")
            verified = api.get("/api/v1/audit/verify").json()
            assert verified["intact"] is True, verified
            api.close()
        # dev's task ended while the database was away: stored after, not run a second time.
        assert sorted((tmp_path / "ran.txt").read_text().split()) == ["dev", "qa"]
    finally:
        engines.stop()
    said = engines.log.read_text()  # the engine and its wake-up listener said what happened
    assert "engine pass failed" in said and "listening for wake-ups" in said, said[-2000:]
