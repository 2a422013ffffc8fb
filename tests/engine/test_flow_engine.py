"""The engine driving whole flows: fan-out, fan-in, channels, gates, failures, concurrency."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from conveyor.clock import ManualClock
from conveyor.engine.reconciler import PassOutcome
from conveyor.engine.service import Conveyor
from conveyor.engine.view import NodeView, ReleaseView
from conveyor.errors import Conflict
from conveyor.store.tables import AuditRow, PromotionRow, TaskRunRow
from tests.conftest import BASE, DIGEST, apply_yaml, digest, reopen

# --- building definitions -------------------------------------------------------------
# Documents are written as JSON, which is YAML: no indentation or quoting traps.

LOG = 'echo "$0 $1" >> runs.txt'  # $0 = environment, $1 = version


def document(kind: str, name: str, spec: dict[str, Any]) -> str:
    doc = {"apiVersion": "conveyor.dev/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}
    return "---\n" + json.dumps(doc) + "\n"


def flow(
    nodes: list[dict[str, Any]], name: str = "main", version: str = "1.00", **spec: Any
) -> str:
    return document(
        "PromotionFlow",
        name,
        {
            "version": version,
            "product": "shop",
            "triggerEnvironment": "dev",
            "environments": nodes,
            **spec,
        },
    )


def workflow(script: str = LOG, timeout: str = "30s") -> str:
    """A policy for every environment: one task running `sh -c script ENV VERSION`."""
    task = {
        "name": "work",
        "uses": "run",
        "timeout": timeout,
        "with": {"args": ["sh", "-c", script, "${{ environment.name }}", "${{ release.version }}"]},
    }
    return document(
        "PromotionPolicy", "all", {"workflow": {"steps": [{"name": "deploy", "tasks": [task]}]}}
    )


def policy(name: str, selector: dict[str, Any], **body: Any) -> str:
    return document("PromotionPolicy", name, {"priority": 10, "selector": selector, **body})


PRODUCTION = {"environments": {"types": ["production"]}}


# qa's entry waits for the release label qa-signoff.
QA_SIGNOFF = policy(
    "qa-signoff",
    {"environments": {"names": ["qa"]}},
    gates=[{"releaseLabel": {"key": "qa-signoff"}}],
)


def setup(cv: Conveyor, *docs: str) -> None:
    apply_yaml(cv, BASE + "".join(docs))


def release(cv: Conveyor, version: str = "1.0.0", n: int = 0, trigger: str | None = "main") -> str:
    cv.create_release("shop", version, {"web": f"registry.local/web@{digest(n) if n else DIGEST}"})
    ref = f"shop@{version}"
    if trigger:
        cv.trigger(trigger, ref)
    return ref


def node(view: ReleaseView, environment: str) -> NodeView:
    (found,) = [n for n in view.nodes if n.environment == environment]
    return found


def states(view: ReleaseView) -> dict[str, str]:
    return {n.environment: n.state for n in view.nodes}


def runs(cv: Conveyor) -> list[str]:
    path = cv.workdir / "runs.txt"
    return path.read_text().splitlines() if path.exists() else []


# --- driving the engine without jumping the clock --------------------------------------

MAX_PASSES = 500


def step(cv: Conveyor, wait_s: float = 2.0) -> None:
    """One pass; if it moved nothing but tasks are in flight, wait for one to finish."""
    out = cv.engine.run_pass()
    if not out.moved and out.inflight:
        cv.engine.wake.wait(wait_s)


def idle(cv: Conveyor) -> PassOutcome:
    """`run_until_idle`, bounded: a livelock fails the test instead of hanging it."""
    out = cv.engine.run_until_idle(max_passes=MAX_PASSES)
    assert not out.moved, f"still moving after {MAX_PASSES} passes"
    return out


def settle(cv: Conveyor, timeout_s: float = 4.0) -> None:
    """Passes until nothing moves and no task is in flight; the clock does not move."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        out = cv.engine.run_pass()
        if out.moved:
            continue
        if not out.inflight:
            return
        cv.engine.wake.wait(0.5)
    raise AssertionError("the engine did not settle")


def drive(
    cv: Conveyor, ref: str, until: Callable[[ReleaseView], bool], timeout_s: float = 4.0
) -> ReleaseView:
    """Passes until `until(view)` holds; fail if the engine goes idle or time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        out = cv.engine.run_pass()
        view = cv.show(ref)
        if until(view):
            return view
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached: {states(view)}")
        if not out.moved:
            if not out.inflight:
                raise AssertionError(f"idle before the condition held: {states(view)}")
            cv.engine.wake.wait(0.5)


FOUR = [
    {"name": "qa", "dependsOn": ["dev"]},
    {"name": "prod", "dependsOn": ["qa"]},
    {"name": "prod-eu", "dependsOn": ["qa"]},
    {"name": "prod-asia", "dependsOn": ["qa"]},
]
PRODS = ["prod", "prod-eu", "prod-asia"]


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


# --- one environment, many releases -----------------------------------------------------


def test_one_promotion_per_environment_at_a_time(cv: Conveyor) -> None:
    setup(
        cv,
        flow([{"name": "qa", "dependsOn": ["dev"]}]),
        workflow(),
        policy(
            "dev-soak", {"environments": {"names": ["dev"]}}, verify=[{"timed": {"duration": "1h"}}]
        ),
    )
    first = release(cv, "1.0.0", 1)
    settle(cv)
    assert node(cv.show(first), "dev").state == "verifying"
    assert node(cv.show(first), "dev").detail == "soak 1h in dev, 1h left"
    second = release(cv, "1.1.0", 2)
    settle(cv)
    dev2 = node(cv.show(second), "dev")
    assert dev2.state == "waiting"
    assert "environment busy" in dev2.detail and "shop@1.0.0" in dev2.detail
    assert runs(cv) == ["dev 1.0.0"]

    idle(cv)
    one, two = cv.show(first), cv.show(second)
    assert (one.status, two.status) == ("succeeded", "succeeded")
    d1, d2 = node(one, "dev"), node(two, "dev")
    assert d1.finished_at is not None and d2.started_at is not None
    assert d2.started_at >= d1.finished_at
    assert runs(cv).index("dev 1.1.0") > runs(cv).index("dev 1.0.0")


def test_two_releases_racing_for_one_environment_in_one_pass(cv: Conveyor) -> None:
    setup(cv, flow([{"name": "qa", "dependsOn": ["dev"]}]), workflow("sleep 0.2; " + LOG))
    first = release(cv, "1.0.0", 1)
    second = release(cv, "1.1.0", 2)
    cv.engine.run_pass()  # both are ready in the same pass: only one may take dev
    d1, d2 = node(cv.show(first), "dev"), node(cv.show(second), "dev")
    assert (d1.state, d2.state) == ("running", "waiting")
    assert d2.detail == "environment busy: shop@1.0.0 is running in dev"
    assert cv.engine.runner.inflight == 1
    idle(cv)
    assert (cv.show(first).status, cv.show(second).status) == ("succeeded", "succeeded")
    assert runs(cv).index("dev 1.1.0") > runs(cv).index("dev 1.0.0")


def test_older_release_never_deploys_over_a_newer_one(cv: Conveyor) -> None:
    setup(cv, flow([{"name": "qa", "dependsOn": ["dev"]}]), workflow())
    newer = release(cv, "1.1.0", 2)
    idle(cv)
    assert cv.show(newer).status == "succeeded"
    older = release(cv, "1.0.0", 1)
    idle(cv)
    view = cv.show(older)
    dev = node(view, "dev")
    assert dev.state == "superseded"
    assert "shop@1.1.0" in dev.detail
    assert node(view, "qa").state == "pending"
    assert view.status == "superseded"
    assert runs(cv) == ["dev 1.1.0", "qa 1.1.0"]


def test_older_release_held_upstream_is_superseded_where_a_newer_one_arrived(
    cv: Conveyor,
) -> None:
    """1.0.0 is held at qa's entry gate while 1.1.0 overtakes it and deploys to qa."""
    setup(
        cv,
        flow([{"name": "qa", "dependsOn": ["dev"]}]),
        workflow(),
        QA_SIGNOFF,
    )
    older = release(cv, "1.0.0", 1)
    idle(cv)
    assert states(cv.show(older)) == {"dev": "succeeded", "qa": "waiting"}
    newer = release(cv, "1.1.0", 2)
    cv.label(newer, {"qa-signoff": "ok"})
    idle(cv)
    assert cv.show(newer).status == "succeeded"
    assert node(cv.show(older), "qa").state == "waiting"

    cv.label(older, {"qa-signoff": "ok"})
    idle(cv)
    view = cv.show(older)
    assert node(view, "qa").state == "superseded"
    assert "shop@1.1.0" in node(view, "qa").detail
    assert view.status == "superseded"
    assert runs(cv) == ["dev 1.0.0", "dev 1.1.0", "qa 1.1.0"]


def test_queue_limit_refuses_a_trigger_and_changes_nothing(cv: Conveyor) -> None:
    setup(
        cv,
        flow([{"name": "qa", "dependsOn": ["dev"]}], concurrency={"mode": "queue", "limit": 1}),
        workflow(),
    )
    first = release(cv, "1.0.0", 1)
    cv.engine.run_pass()
    second = release(cv, "1.1.0", 2, trigger=None)
    with cv.store.session() as s:
        audit_before = len(s.scalars(select(AuditRow)).all())
    with pytest.raises(Conflict, match="limit") as info:
        cv.trigger("main", second)
    assert "queue limit" in str(info.value)
    assert "main" in str(info.value)
    view = cv.show(second)
    assert view.status == "created" and view.flow is None and view.nodes == []
    with cv.store.session() as s:
        assert len(s.scalars(select(AuditRow)).all()) == audit_before
        assert s.scalars(select(PromotionRow).where(PromotionRow.release_id == 2)).all() == []

    idle(cv)
    assert cv.show(first).status == "succeeded"
    # With the first finished the queue has room again.
    cv.trigger("main", second)
    idle(cv)
    assert cv.show(second).status == "succeeded"


def test_supersede_mode_stops_the_older_release(cv: Conveyor) -> None:
    setup(
        cv,
        flow(FOUR, concurrency={"mode": "supersede"}),
        workflow(),
        QA_SIGNOFF,
    )
    older = release(cv, "1.0.0", 1)
    idle(cv)
    view = cv.show(older)
    assert states(view) == {
        "dev": "succeeded",
        "qa": "waiting",
        "prod": "pending",
        "prod-eu": "pending",
        "prod-asia": "pending",
    }
    newer = release(cv, "1.1.0", 2)
    view = cv.show(older)
    assert states(view) == {
        "dev": "succeeded",
        "qa": "superseded",
        "prod": "superseded",
        "prod-eu": "superseded",
        "prod-asia": "superseded",
    }
    assert "1.1.0" in node(view, "qa").detail

    cv.label(newer, {"qa-signoff": "ok"})
    cv.label(older, {"qa-signoff": "ok"})  # too late: it was superseded
    idle(cv)
    assert cv.show(older).status == "superseded"
    assert cv.show(newer).status == "succeeded"
    assert [line for line in runs(cv) if line.endswith("1.0.0")] == ["dev 1.0.0"]


def test_auto_trigger_starts_on_creation(cv: Conveyor) -> None:
    setup(cv, flow([{"name": "qa", "dependsOn": ["dev"]}], autoTrigger=True), workflow())
    ref = release(cv, trigger=None)
    view = cv.show(ref)
    assert view.status == "running" and view.flow == "main"
    idle(cv)
    assert cv.show(ref).status == "succeeded"
    assert runs(cv) == ["dev 1.0.0", "qa 1.0.0"]


def test_manual_flow_does_not_auto_trigger(cv: Conveyor) -> None:
    setup(cv, flow([{"name": "qa", "dependsOn": ["dev"]}]), workflow())
    ref = release(cv, trigger=None)
    idle(cv)
    assert cv.show(ref).status == "created"
    assert runs(cv) == []


def test_editing_a_flow_does_not_change_a_triggered_release(cv: Conveyor) -> None:
    setup(cv, flow([{"name": "qa", "dependsOn": ["dev"]}]), workflow())
    ref = release(cv, "1.0.0", 1)
    cv.engine.run_pass()
    setup(
        cv,
        flow(
            [{"name": "prod", "dependsOn": ["dev"]}, {"name": "prod-eu", "dependsOn": ["prod"]}],
            version="2.00",
        ),
        workflow(),
    )
    idle(cv)
    view = cv.show(ref)
    assert view.status == "succeeded"
    assert view.flow_version == "1.00"
    assert states(view) == {"dev": "succeeded", "qa": "succeeded"}
    assert runs(cv) == ["dev 1.0.0", "qa 1.0.0"]

    later = release(cv, "1.1.0", 2)
    idle(cv)
    view = cv.show(later)
    assert view.flow_version == "2.00"
    assert states(view) == {"dev": "succeeded", "prod": "succeeded", "prod-eu": "succeeded"}


# --- crash and audit --------------------------------------------------------------------


def test_crash_resume_reruns_the_orphaned_task(cv: Conveyor, clock: ManualClock) -> None:
    script = 'echo "$0" >> starts.txt; sleep 0.3; echo "$0 $1" > "done-$0"'
    setup(cv, flow([{"name": "qa", "dependsOn": ["dev"]}]), workflow(script))
    ref = release(cv)
    cv.engine.run_pass()
    old_owner = cv.engine.owner
    with cv.store.session() as s:
        (row,) = s.scalars(select(TaskRunRow)).all()
        assert (row.status, row.owner) == ("running", old_owner)
        run_id = row.id

    # The first engine "dies": a second one opens the same database and carries on.
    second = reopen(cv, clock)
    try:
        idle(second)
        view = second.show(ref)
        assert view.status == "succeeded", states(view)
        with second.store.session() as s:
            row = s.get(TaskRunRow, run_id)
            assert row is not None
            assert row.status == "succeeded"
            assert row.owner == second.engine.owner != old_owner
        assert (cv.workdir / "done-dev").read_text() == "dev 1.0.0\n"
        assert (cv.workdir / "done-qa").read_text() == "qa 1.0.0\n"
        starts = (cv.workdir / "starts.txt").read_text().split()
        assert starts.count("dev") == 2  # the orphan ran again under the new owner
        assert starts.count("qa") == 1
    finally:
        second.close()


def test_every_transition_is_audited(cv: Conveyor) -> None:
    setup(cv, flow(FOUR), workflow())
    ref = release(cv)
    idle(cv)
    view = cv.show(ref)
    assert view.status == "succeeded"
    n, problems = cv.verify_audit()
    assert problems == []
    assert n > len(view.nodes)
    with cv.store.session() as s:
        events = [(e.action, e.subject) for e in s.scalars(select(AuditRow).order_by(AuditRow.id))]
    actions = [a for a, _ in events]
    assert ("release.trigger", ref) in events
    assert ("release.succeeded", ref) in events
    assert actions.count("promotion.succeeded") == len(view.nodes)
    for env in ["dev", "qa", *PRODS]:
        moves = [a for a, subject in events if subject == f"{ref}/{env}"]
        assert moves == [
            "promotion.waiting",
            "promotion.running",
            "promotion.verifying",
            "promotion.succeeded",
        ], env
    assert actions.index("release.trigger") < actions.index("promotion.waiting")


def test_terminate_audits_each_promotion_it_stops(cv: Conveyor) -> None:
    """Every promotion transition is audited, the ones `terminate` makes included."""
    setup(
        cv,
        flow(FOUR),
        workflow(),
        policy("production", PRODUCTION, gates=[{"releaseLabel": {"key": "go"}}]),
    )
    ref = release(cv)
    idle(cv)
    cv.terminate(ref)
    view = cv.show(ref)
    assert states(view) == {
        "dev": "succeeded",
        "qa": "succeeded",
        "prod": "terminated",
        "prod-eu": "terminated",
        "prod-asia": "terminated",
    }
    assert cv.verify_audit()[1] == []
    with cv.store.session() as s:
        events = [(e.action, e.subject) for e in s.scalars(select(AuditRow).order_by(AuditRow.id))]
    assert ("release.terminate", ref) in events
    for env in PRODS:
        assert ("promotion.terminated", f"{ref}/{env}") in events, env


def test_retry_after_a_newer_release_replaced_it_is_refused_and_nothing_stays_queued(
    cv: Conveyor,
) -> None:
    setup(cv, flow([{"name": "qa", "dependsOn": ["dev"]}]), workflow('test ! -e "fail-$0"'))
    (cv.workdir / "fail-qa").touch()
    old = release(cv, "1.0.0", n=1)
    idle(cv)
    assert cv.show(old).status == "failed"
    (cv.workdir / "fail-qa").unlink()
    new = release(cv, "2.0.0", n=2)
    idle(cv)
    assert cv.show(new).status == "succeeded"

    with pytest.raises(Conflict, match=r"shop@2\.0\.0 already runs in qa.*terminate"):
        cv.retry(old)
    assert cv.show(old).status == "failed"  # refused: nothing changed
    cv.terminate(old)
    idle(cv)
    with cv.store.session() as s:
        unfinished = s.scalars(
            select(TaskRunRow).where(TaskRunRow.status.in_(["queued", "running", "retrying"]))
        ).all()
    assert unfinished == []
