"""`conveyor engine` as a long-running process: woken by writers elsewhere, not by polling."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from conveyor.clock import SystemClock
from conveyor.engine import wakeup
from conveyor.engine.probes import Prober
from conveyor.engine.service import Conveyor
from conveyor.store.auditkeys import AuditKeys
from conveyor.store.db import open_store
from tests.conftest import BASE, DIGEST, apply_yaml
from tests.pg import Postgres

FLOW = """
---
apiVersion: conveyor.dev/v1
kind: PromotionFlow
metadata: {name: main}
spec:
  version: "1.00"
  product: shop
  triggerEnvironment: dev
  environments:
    - {name: qa, dependsOn: [dev]}
"""


def test_engine_wakes_on_a_write_from_another_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    server = Conveyor(open_store(url), clock=SystemClock(), workdir=tmp_path)
    client = Conveyor(open_store(url), clock=SystemClock(), workdir=tmp_path)
    apply_yaml(client, BASE + FLOW)
    sock = wakeup.path_for(server.store.engine.url)
    assert sock is not None
    # An hour between safety-net looks: only the wake-up can make this pass quickly.
    thread = threading.Thread(target=server.engine.serve, kwargs={"resync": timedelta(hours=1)})
    thread.start()
    try:
        for _ in range(100):
            if sock.exists():
                break
            threading.Event().wait(0.02)
        assert sock.exists(), "the engine listens beside its database"
        client.create_release("shop", "1.0.0", {"web": f"registry.local/web@{DIGEST}"})
        client.trigger("main", "shop@1.0.0")
        assert succeeds_soon(client)
    finally:
        server.engine.stop()
        thread.join(timeout=10)
        server.close()
        client.close()
    assert not thread.is_alive()
    assert not sock.exists(), "the socket is removed when the engine stops"


def succeeds_soon(client: Conveyor) -> bool:
    for _ in range(150):  # 15 s at most; a woken engine needs well under one
        if client.show("shop@1.0.0").status == "succeeded":
            return True
        threading.Event().wait(0.1)
    return False


def test_notify_without_a_listener_is_harmless(tmp_path: Path) -> None:
    wakeup.notify(tmp_path / "nobody.wake")
    wakeup.notify(None)


def test_on_postgresql_a_write_from_another_process_wakes_the_engine(
    pg: Postgres, tmp_path: Path
) -> None:
    """LISTEN/NOTIFY: the trigger's transaction wakes the engine; with an hour between its
    safety-net looks, nothing else could move the release in seconds."""
    url = pg.database()
    keys = AuditKeys(tmp_path / "audit")
    server = Conveyor(open_store(url, audit_keys=keys), clock=SystemClock(), workdir=tmp_path)
    client = Conveyor(open_store(url, audit_keys=keys), clock=SystemClock(), workdir=tmp_path)
    apply_yaml(client, BASE + FLOW)
    thread = threading.Thread(target=server.engine.serve, kwargs={"resync": timedelta(hours=1)})
    thread.start()
    try:
        client.create_release("shop", "1.0.0", {"web": f"registry.local/web@{DIGEST}"})
        threading.Event().wait(0.5)  # the engine's first pass is over; it sleeps now
        client.trigger("main", "shop@1.0.0")
        assert succeeds_soon(client)
    finally:
        server.engine.stop()
        thread.join(timeout=10)
        server.close()
        client.close()
    assert not thread.is_alive()


def test_a_failed_read_between_passes_is_retried_not_fatal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The database can go away between a pass and the probes' look at the definitions:
    the engine logs it and carries on, as for a failed pass (it used to end `serve`)."""
    real = Prober.start_due
    calls: list[int] = []

    def flaky(self: Prober, *args: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("SELECT", {}, Exception("connection refused"))
        return real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Prober, "start_due", flaky)
    url = f"sqlite:///{tmp_path / 'c.db'}"
    server = Conveyor(open_store(url), clock=SystemClock(), workdir=tmp_path)
    client = Conveyor(open_store(url), clock=SystemClock(), workdir=tmp_path)
    apply_yaml(client, BASE + FLOW)
    thread = threading.Thread(target=server.engine.serve)
    thread.start()
    try:
        client.create_release("shop", "1.0.0", {"web": f"registry.local/web@{DIGEST}"})
        client.trigger("main", "shop@1.0.0")
        assert succeeds_soon(client)
        for _ in range(100):  # the next loop looks at the probes again (10 s at most)
            if len(calls) > 1:
                break
            threading.Event().wait(0.1)
        assert thread.is_alive() and len(calls) > 1
    finally:
        server.engine.stop()
        thread.join(timeout=10)
        server.close()
        client.close()
    assert "engine pass failed (1 in a row)" in caplog.text
