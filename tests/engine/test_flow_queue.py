"""The flow engine, continued: one environment and many releases (one promotion at a
time, queues, supersede, auto-trigger), crash recovery and the audit of every transition."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from conveyor.clock import ManualClock
from conveyor.engine.service import Conveyor
from conveyor.errors import Conflict
from conveyor.store.tables import AuditRow, PromotionRow, TaskRunRow
from tests.conftest import reopen
from tests.engine.flows import (
    FOUR,
    LOG,
    PRODS,
    PRODUCTION,
    QA_SIGNOFF,
    flow,
    idle,
    node,
    policy,
    release,
    runs,
    settle,
    setup,
    states,
    workflow,
)

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
