"""Two API processes on one PostgreSQL database under concurrent health-report batches:
no error, and every report accepted is stored exactly once (issue 13; bench/api.py is the
long version)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx
import psycopg

from conveyor.clock import SystemClock
from conveyor.engine.service import Conveyor
from conveyor.model.access import Role, Scope
from conveyor.store.auditkeys import AuditKeys
from conveyor.store.db import open_store
from tests.conftest import BASE, DIGEST, apply_yaml
from tests.pg import Postgres
from tests.serving import serving

CLIENTS = 8
BATCHES = 12  # per client
BATCH = 50


def test_two_servers_store_every_report_once(pg: Postgres, tmp_path: Path) -> None:
    url = pg.database()
    audit = tmp_path / "audit"
    cv = Conveyor(open_store(url, audit_keys=AuditKeys(audit)), actor="local:setup")
    cv.claim()
    apply_yaml(cv, BASE)
    cv.create_release("shop", "1.0.0", {"web": f"registry.local/web@{DIGEST}"})
    cv.add_user("agent", [])
    cv.grant("user:agent", Role.REPORTER, Scope())
    token = cv.create_token("agent", timedelta(days=1))[1]
    cv.close()
    env = {"CONVEYOR_AUDIT_DIR": str(audit)}
    errors: list[str] = []
    accepted = [0] * CLIENTS
    with (
        serving(url, tmp_path, "--no-engine", env=env, log=tmp_path / "a.log") as first,
        serving(url, tmp_path, "--no-engine", env=env, log=tmp_path / "b.log") as second,
    ):

        def client(n: int) -> None:
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(headers=headers, trust_env=False, timeout=60) as http:
                for k in range(BATCHES):
                    site = (first, second)[(n + k) % 2]
                    at = SystemClock().now().isoformat()
                    reports = [
                        {
                            "environment": "dev",
                            "entity": "web",
                            "node": f"c{n}-{k}-{i}",
                            "version": "1.0.0",
                            "state": "HEALTHY",
                            "at": at,
                        }
                        for i in range(BATCH)
                    ]
                    # The same batch (times included) twice, once to each server, as an
                    # agent retrying after a lost answer: stored once all the same.
                    for target in (site, (first, second)[(n + k + 1) % 2]):
                        answer = http.post(
                            f"{target}/api/v1/health/reports", json={"reports": reports}
                        )
                        if answer.status_code != 201:
                            errors.append(f"{answer.status_code} {answer.text[:200]}")
                    accepted[n] += BATCH

        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        began = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert time.monotonic() - began < 120
    assert errors == []
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain) as con:
        stored = con.execute("SELECT count(*) FROM health_reports").fetchone()
    assert stored is not None and stored[0] == sum(accepted) == CLIENTS * BATCHES * BATCH
