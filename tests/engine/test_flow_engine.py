"""The engine driving whole flows: fan-out, fan-in, channels, gates, failure and retry (one
environment and many releases, crashes and the audit: test_flow_queue.py)."""

from __future__ import annotations

import os
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from conveyor.clock import ManualClock
from conveyor.engine.service import Conveyor
from conveyor.store.tables import PromotionRow, TaskRunRow
from tests.engine.flows import (
    FOUR,
    PRODS,
    PRODUCTION,
    drive,
    flow,
    idle,
    node,
    policy,
    release,
    runs,
    settle,
    setup,
    states,
    step,
    workflow,
)

# --- shape of the flow ------------------------------------------------------------------


def test_fan_out_moves_every_child_in_one_pass(cv: Conveyor) -> None:
    setup(cv, flow(FOUR), workflow())
    ref = release(cv)
    history: list[dict[str, str]] = []
    for _ in range(200):
        step(cv)
        now = states(cv.show(ref))
        history.append(now)
        pending = [e for e in PRODS if now[e] == "pending"]
        assert len(pending) in (0, 3), f"fan-out split over passes: {now}"
        if not pending:
            break
    else:
        pytest.fail(f"the prods never left pending: {history[-1]}")
    assert history[-1]["qa"] == "succeeded"
    assert len(history) >= 2 and all(history[-2][e] == "pending" for e in PRODS)
    assert all(history[-1][e] in ("waiting", "running", "verifying", "succeeded") for e in PRODS)

    idle(cv)
    view = cv.show(ref)
    assert view.status == "succeeded"
    lines = runs(cv)
    assert lines[:2] == ["dev 1.0.0", "qa 1.0.0"]
    assert sorted(lines[2:]) == sorted(f"{e} 1.0.0" for e in PRODS)
    # The three prods are one level of the view: they run side by side.
    assert [sorted(n.environment for n in level) for level in view.levels] == [
        ["dev"],
        ["qa"],
        sorted(PRODS),
    ]


def test_fan_in_waits_for_every_parent(cv: Conveyor, clock: ManualClock) -> None:
    nodes = [
        {"name": "qa", "dependsOn": ["dev"]},
        {"name": "prod", "dependsOn": ["qa"]},
        {
            "name": "prod-eu",
            "dependsOn": ["qa"],
            "policy": {"gates": [{"timed": {"duration": "1h"}}]},
        },
        {"name": "prod-asia", "dependsOn": ["prod", "prod-eu"]},
    ]
    setup(cv, flow(nodes), workflow())
    ref = release(cv)
    settle(cv)
    view = cv.show(ref)
    assert states(view) == {
        "dev": "succeeded",
        "qa": "succeeded",
        "prod": "succeeded",
        "prod-eu": "waiting",
        "prod-asia": "pending",
    }
    assert node(view, "prod-asia").detail == "after prod-eu"
    assert node(view, "prod-asia").parents == ["prod", "prod-eu"]

    clock.advance(timedelta(minutes=59))
    settle(cv)
    assert states(cv.show(ref))["prod-asia"] == "pending"

    idle(cv)
    view = cv.show(ref)
    assert view.status == "succeeded", states(view)
    eu, asia = node(view, "prod-eu"), node(view, "prod-asia")
    assert eu.finished_at is not None and asia.started_at is not None
    assert asia.started_at >= eu.finished_at
    assert runs(cv)[-1] == "prod-asia 1.0.0"


def test_channel_node_fans_out_to_every_labelled_environment(cv: Conveyor) -> None:
    nodes = [
        {"name": "qa", "dependsOn": ["dev"]},
        {"name": "edge", "channel": {"labels": {"tier": "prod"}}, "dependsOn": ["qa"]},
    ]
    setup(cv, flow(nodes), workflow())
    ref = release(cv)
    with cv.store.session() as s:
        rows = s.scalars(select(PromotionRow).where(PromotionRow.node == "edge")).all()
        assert sorted(r.environment for r in rows) == ["prod", "prod-asia", "prod-eu"]
    idle(cv)
    view = cv.show(ref)
    assert view.status == "succeeded"
    edge = [n for n in view.nodes if n.node == "edge"]
    assert sorted(n.environment for n in edge) == ["prod", "prod-asia", "prod-eu"]
    assert all(n.state == "succeeded" and n.parents == ["qa"] for n in edge)
    assert sorted(runs(cv)[2:]) == ["prod 1.0.0", "prod-asia 1.0.0", "prod-eu 1.0.0"]


# --- gates ------------------------------------------------------------------------------


def test_timed_soak_wakes_exactly_when_due(cv: Conveyor, clock: ManualClock) -> None:
    setup(
        cv,
        flow(FOUR),
        workflow(),
        policy("production", PRODUCTION, gates=[{"timed": {"in": "qa", "duration": "2h"}}]),
    )
    ref = release(cv)
    settle(cv)
    view = cv.show(ref)
    qa = node(view, "qa")
    assert qa.state == "succeeded" and qa.deployed_at is not None
    due = qa.deployed_at + timedelta(hours=2)
    for env in PRODS:
        assert node(view, env).state == "waiting"
        assert node(view, env).detail == "soak 2h in qa, 2h left"
    assert cv.engine.run_pass().next_at == due

    clock.advance(timedelta(minutes=48))
    out = cv.engine.run_pass()
    assert not out.moved and out.next_at == due
    assert node(cv.show(ref), "prod").detail == "soak 2h in qa, 1h12m left"

    clock.set(due - timedelta(seconds=1))
    settle(cv)
    assert all(s == "waiting" for e, s in states(cv.show(ref)).items() if e in PRODS)
    assert runs(cv) == ["dev 1.0.0", "qa 1.0.0"]

    # Waiting jumps the clock straight to the wake-up time: no polling in between.
    idle(cv)
    view = cv.show(ref)
    assert view.status == "succeeded"
    assert clock.now() == due
    for env in PRODS:
        assert node(view, env).started_at == due
    gates = node(view, "prod").gates
    assert [(g["kind"], g["result"]) for g in gates] == [("timed", "pass")]


def test_release_label_gate_waits_for_the_label(cv: Conveyor, clock: ManualClock) -> None:
    setup(
        cv,
        flow(FOUR),
        workflow(),
        policy(
            "production",
            PRODUCTION,
            gates=[{"releaseLabel": {"key": "qa-signoff", "values": ["passed"]}}],
        ),
    )
    ref = release(cv)
    before = clock.now()
    out = idle(cv)
    assert out.next_at is None and out.inflight == 0
    assert cv.engine.run_pass().next_at is None
    assert clock.now() == before  # nothing to wait for on the clock
    view = cv.show(ref)
    assert view.status == "running"
    for env in PRODS:
        assert node(view, env).state == "waiting"
        assert "qa-signoff" in node(view, env).detail

    cv.label(ref, {"qa-signoff": "failed"})
    idle(cv)
    assert all(states(cv.show(ref))[e] == "waiting" for e in PRODS)
    assert "qa-signoff=failed" in node(cv.show(ref), "prod").detail

    cv.label(ref, {"qa-signoff": "passed"})
    idle(cv)
    view = cv.show(ref)
    assert view.status == "succeeded", states(view)
    assert len(runs(cv)) == 5


# --- failure and retry ------------------------------------------------------------------

# prod-eu blocks until the test creates `go`; an environment fails while `fail-ENV` exists.
FLAKY = (
    'echo "$0" >> runs.txt; '
    'if [ "$0" = prod-eu ]; then while [ ! -e go ]; do sleep 0.02; done; fi; '
    'test ! -e "fail-$0"'
)


def test_failed_node_blocks_descendants_and_retry_resumes_it(cv: Conveyor) -> None:
    nodes = [
        {"name": "qa", "dependsOn": ["dev"]},
        {"name": "prod", "dependsOn": ["qa"]},
        {"name": "prod-eu", "dependsOn": ["qa"]},
        {"name": "prod-asia", "dependsOn": ["prod"]},
    ]
    setup(cv, flow(nodes), workflow(FLAKY, timeout="20s"))
    (cv.workdir / "fail-prod").touch()
    ref = release(cv)
    try:
        view = drive(cv, ref, lambda v: states(v)["prod"] == "failed")
        assert states(view)["prod-eu"] == "running"
        assert states(view)["prod-asia"] == "pending"
        assert view.status == "failed"
    finally:
        (cv.workdir / "go").touch()  # never leave the task spinning

    view = drive(cv, ref, lambda v: states(v)["prod-eu"] == "succeeded")
    settle(cv)
    view = cv.show(ref)
    assert view.status == "failed"
    assert states(view) == {
        "dev": "succeeded",
        "qa": "succeeded",
        "prod": "failed",
        "prod-eu": "succeeded",
        "prod-asia": "pending",
    }
    assert "blocked by" in node(view, "prod-asia").detail
    assert "prod" in node(view, "prod-asia").detail
    assert "exit 1" in node(view, "prod").detail
    assert "prod" in view.message

    (cv.workdir / "fail-prod").unlink()
    assert cv.retry(ref) == ["prod"]
    idle(cv)
    view = cv.show(ref)
    assert view.status == "succeeded", states(view)
    counts = {e: runs(cv).count(e) for e in ["dev", "qa", "prod", "prod-eu", "prod-asia"]}
    assert counts == {"dev": 1, "qa": 1, "prod": 2, "prod-eu": 1, "prod-asia": 1}


def test_terminate_kills_the_running_task(cv: Conveyor) -> None:
    script = "echo $$ > pid; exec sleep 20"
    setup(cv, flow([{"name": "qa", "dependsOn": ["dev"]}]), workflow(script))
    ref = release(cv)
    cv.engine.run_pass()
    with cv.store.session() as s:
        (row,) = s.scalars(select(TaskRunRow)).all()
        assert row.status == "running"
    started = time.monotonic()
    pid_file = cv.workdir / "pid"
    while not pid_file.exists() or not pid_file.read_text().strip():
        assert time.monotonic() - started < 3, "the task never started"
        time.sleep(0.02)
    pid = int(pid_file.read_text())

    cv.terminate(ref)
    status = ""
    for _ in range(100):
        step(cv, wait_s=0.2)
        with cv.store.session() as s:
            status = s.scalars(select(TaskRunRow.status)).one()
        if status == "cancelled" and cv.engine.runner.inflight == 0:
            break
    assert status == "cancelled"
    assert cv.engine.runner.inflight == 0, "the task thread is still running"
    assert time.monotonic() - started < 5
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the process is gone (and reaped)
    view = cv.show(ref)
    assert view.status == "terminated"
    assert states(view) == {"dev": "terminated", "qa": "terminated"}
    assert node(view, "dev").detail == "terminated by tester"
