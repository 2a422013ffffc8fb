"""Engine ownership: leases, take-over of a dead engine's tasks only, one engine per SQLite
database (a second refused or standing by), `run --until-idle` beside a live engine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from conveyor.clock import ManualClock
from conveyor.engine import lease
from conveyor.engine.service import Conveyor
from conveyor.errors import EngineBusy
from conveyor.store.db import open_store
from conveyor.store.tables import AuditRow, EngineLeaseRow, TaskRunRow
from tests.conftest import BASE, DIGEST, apply_yaml

# qa's task notes each run in ran.txt, then waits for a file `go` (20 s at most).
DEFS = """
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
---
apiVersion: conveyor.dev/v1
kind: PromotionPolicy
metadata: {name: qa}
spec:
  selector: {environments: {names: [qa]}}
  workflow:
    steps:
      - name: deploy
        tasks:
          - name: slow
            uses: run
            timeout: 30s
            with:
              args: [sh, -c, 'echo run >> ran.txt; n=0; while [ ! -e go ] && [ $n -lt 1000 ];
                     do sleep 0.02; n=$((n+1)); done']
"""


def ran(work: Path) -> int:
    path = work / "ran.txt"
    return len(path.read_text().splitlines()) if path.exists() else 0


def wait_for(check: object, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def the_task(cv: Conveyor) -> TaskRunRow:
    with cv.store.session() as s:
        return s.scalars(select(TaskRunRow).where(TaskRunRow.task == "slow")).one()


def test_only_a_dead_engines_task_is_taken_over_as_a_new_audited_attempt(
    tmp_path: Path, clock: ManualClock
) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    work = tmp_path / "work"
    work.mkdir()
    first = Conveyor(open_store(url), clock=clock, workdir=work)
    second = Conveyor(open_store(url), clock=clock, workdir=work)
    try:
        apply_yaml(first, BASE + DEFS)
        first.create_release("shop", "1.0.0", {"web": f"registry.local/web@{DIGEST}"})
        first.trigger("main", "shop@1.0.0")
        # The first engine, "on another host", holds the lease and runs the task.
        lease.acquire(first.store, clock, first.engine.owner, "engine")
        with first.store.session() as s:
            s.get(EngineLeaseRow, first.engine.owner).host = "elsewhere"  # type: ignore[union-attr]
        while first.engine.run_pass().moved:
            pass
        wait_for(lambda: ran(work) == 1)
        assert the_task(first).status == "running"

        # A second engine leaves a live engine's task alone...
        second.engine.run_pass()
        assert the_task(second).owner == first.engine.owner
        with pytest.raises(EngineBusy, match=r"engine-\w+ \(pid \d+ on elsewhere"):
            second.run_until_idle()
        assert ran(work) == 1

        # ... and takes it over once that lease has expired: attempt 2, audited, visible.
        clock.advance(lease.TTL + timedelta(seconds=1))
        second.engine.run_pass()
        wait_for(lambda: ran(work) == 2)
        row = the_task(second)
        assert (row.owner, row.attempt, row.takeovers) == (second.engine.owner, 2, 1)
        with second.store.session() as s:
            (event,) = s.scalars(select(AuditRow).where(AuditRow.action == "task.takeover"))
            assert event.before == {"owner": first.engine.owner, "attempt": 1}
        (work / "go").touch()
        # The first engine's attempt ends too (its lease had only lapsed): its result is
        # dropped, the task row stays the second engine's attempt.
        lease.acquire(second.store, clock, second.engine.owner, "engine")
        wait_for(first.engine.runner.wake.is_set)  # set as a task of its ends
        first.engine.run_pass()
        row = the_task(first)
        assert (row.owner, row.attempt, row.status) == (second.engine.owner, 2, "running")
        second.run_until_idle()
        view = second.show("shop@1.0.0")
        assert view.status == "succeeded"
        (task,) = [t for n in view.nodes for t in n.tasks if t.task == "slow"]
        assert (task.attempt, task.takeovers) == (2, 1)
        assert second.verify_audit()[1] == []
    finally:
        (work / "go").touch()
        first.close()
        second.close()


def test_a_dead_process_on_this_host_lets_go_at_once(tmp_path: Path, clock: ManualClock) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'c.db'}")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    with store.session() as s:
        s.add(
            EngineLeaseRow(
                owner="engine-dead",
                host=lease.HOST,
                pid=int(dead.stdout),
                mode="engine",
                started_at=clock.now(),
                renewed_at=clock.now(),
                expires_at=clock.now() + lease.TTL,
            )
        )
    lease.acquire(store, clock, "engine-new", "engine")  # not refused: its holder is gone
    with store.session() as s:
        assert [r.owner for r in s.scalars(select(EngineLeaseRow))] == ["engine-new"]
    store.close()


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def conveyor_cmd(db: Path, *args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "conveyor"), "--db", str(db), *args]


def test_a_second_engine_is_refused_or_stands_by(
    tmp_path: Path, engines: list[subprocess.Popen[str]]
) -> None:
    db = tmp_path / "c.db"
    cv = Conveyor(open_store(f"sqlite:///{db}"), workdir=tmp_path)
    apply_yaml(cv, BASE + DEFS.replace("sh, -c, 'echo", "sh, -c, 'true; echo"))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    first = subprocess.Popen(
        conveyor_cmd(db, "engine"),
        cwd=tmp_path,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    engines.append(first)
    wait_for(lambda: (tmp_path / "c.wake").exists())

    refused = subprocess.run(
        conveyor_cmd(db, "engine"),
        cwd=tmp_path,
        env=env,
        text=True,
        capture_output=True,
        timeout=30,
    )
    assert refused.returncode == 4
    assert f"(pid {first.pid} on {lease.HOST}" in refused.stderr
    assert "--standby" in refused.stderr
    run = subprocess.run(
        conveyor_cmd(db, "run", "--until-idle"),
        cwd=tmp_path,
        env=env,
        text=True,
        capture_output=True,
        timeout=30,
    )
    assert run.returncode == 4 and "release watch" in run.stderr

    # The first engine's wake socket is intact: a release is picked up at once.
    (tmp_path / "go").touch()
    cv.create_release("shop", "1.0.0", {"web": f"registry.local/web@{DIGEST}"})
    cv.trigger("main", "shop@1.0.0")
    wait_for(lambda: cv.show("shop@1.0.0").status == "succeeded", 15)

    standby = subprocess.Popen(
        conveyor_cmd(db, "engine", "--standby"),
        cwd=tmp_path,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    engines.append(standby)
    time.sleep(1)
    assert standby.poll() is None, "a standby waits"
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    # The standby takes over: it holds the lease and serves a new release.
    cv.create_release("shop", "1.1.0", {"web": f"registry.local/web@{DIGEST}"})
    cv.trigger("main", "shop@1.1.0")
    wait_for(lambda: cv.show("shop@1.1.0").status == "succeeded", 15)
    with cv.store.session() as s:
        assert [r.pid for r in s.scalars(select(EngineLeaseRow))] == [standby.pid]
    standby.send_signal(signal.SIGTERM)
    assert standby.wait(15) == 0
    with cv.store.session() as s:
        assert list(s.scalars(select(EngineLeaseRow))) == []  # released on a clean stop
    cv.close()
