"""A notification survives the engine: killed (SIGKILL) after the event and before its
delivery, the next engine delivers it, once, under the same delivery id (issue 11)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from conveyor.engine.service import Conveyor
from conveyor.store.db import open_store
from conveyor.store.tables import OutboxRow
from tests.conftest import BASE, DIGEST, apply_yaml
from tests.engine.test_notifications import FLOW, SECRET, sink
from tests.webhooks import Receiver


def engine(db: Path, cwd: Path) -> subprocess.Popen[bytes]:
    exe = str(Path(sys.executable).parent / "conveyor")
    return subprocess.Popen(
        [exe, "--db", str(db), "engine"], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def rows(cv: Conveyor) -> list[OutboxRow]:
    with cv.store.session() as s:
        return list(s.scalars(select(OutboxRow)))


def wait_for(what: str, check: object, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_killed_between_the_event_and_the_delivery_the_next_engine_delivers(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_SECRET_ENV", "HOOK_SECRET")
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    # Nothing listens there yet: every delivery fails until the receiver comes up.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = f"http://127.0.0.1:{port}/hooks"
    db = tmp_path / "c.db"
    cv = Conveyor(open_store(f"sqlite:///{db}"), workdir=tmp_path)
    apply_yaml(cv, BASE + FLOW + sink(down, "  events: [promotion.failed]\n"))
    cv.create_release("shop", "1.0.0", {"web": f"registry.local/web@{DIGEST}"})
    cv.trigger("main", "shop@1.0.0")

    first = engine(db, tmp_path)
    try:
        wait_for("a failed delivery", lambda: any(r.attempts >= 1 for r in rows(cv)))
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    (row,) = rows(cv)
    assert row.delivered_at is None and "ConnectError" in row.last_error

    # The receiver comes up where the sink points; a new engine finds the row and sends it.
    apply_yaml(cv, BASE + FLOW + sink(receiver.url, "  events: [promotion.failed]\n"))
    second = engine(db, tmp_path)
    try:
        wait_for("the delivery", lambda: receiver.got)
        wait_for("the row marked delivered", lambda: rows(cv)[0].delivered_at is not None)
    finally:
        second.send_signal(signal.SIGTERM)
        _, stderr = second.communicate(timeout=15)
    (got,) = receiver.got
    assert got.doc["deliveryId"] == row.payload["deliveryId"]
    assert got.headers["X-Conveyor-Delivery"] == row.payload["deliveryId"]
    assert SECRET.encode() not in stderr
    cv.close()
