"""`audit verify` replays the release events: a status or labels edited in the releases
table alone (the chain cannot see it), a release added without its events, or one deleted
from the table are reported (issue 11)."""

from __future__ import annotations

from sqlalchemy import delete, insert, select, update

from conveyor.clock import ManualClock
from conveyor.engine.service import Conveyor
from conveyor.store.tables import PromotionRow, ReleaseRow
from tests.conftest import BASE, DIGEST, apply_yaml, shop_flow

FLOW = shop_flow("qa")


def released(cv: Conveyor) -> None:
    """Releases through every status path: succeeded, labelled, recalled, terminated."""
    apply_yaml(cv, BASE + FLOW)
    for version in ("1.0.0", "1.1.0", "1.2.0"):
        cv.create_release("shop", version, {"web": f"registry.local/web@{DIGEST}"})
    cv.label("shop@1.0.0", {"qa-signoff": "passed"}, [])
    cv.trigger("main", "shop@1.0.0")
    cv.run_until_idle()
    cv.trigger("main", "shop@1.1.0")
    cv.run_until_idle()
    cv.recall("shop@1.1.0", "bad")
    cv.run_until_idle()
    cv.terminate("shop@1.2.0")


def test_every_status_path_agrees_with_its_events(cv: Conveyor, clock: ManualClock) -> None:
    released(cv)
    statuses = {r.version: r.status for r in cv.list_releases()}
    assert statuses == {"1.0.0": "succeeded", "1.1.0": "recalled", "1.2.0": "terminated"}
    assert cv.verify_audit()[1] == []


def test_edits_of_the_releases_table_alone_are_reported(cv: Conveyor, clock: ManualClock) -> None:
    released(cv)
    with cv.store.session() as s:
        s.execute(
            update(ReleaseRow).where(ReleaseRow.version == "1.1.0").values(status="succeeded")
        )
        s.execute(
            update(ReleaseRow).where(ReleaseRow.version == "1.0.0").values(labels={"qa": "ok"})
        )
        # 1.2.0 was terminated before it was triggered: nothing else refers to it
        s.execute(delete(ReleaseRow).where(ReleaseRow.version == "1.2.0"))
        s.execute(
            insert(ReleaseRow).values(
                product="shop",
                version="9.9.9",
                artifacts={},
                labels={},
                status="succeeded",
                created_by="mallory",
                created_at=clock.now(),
            )
        )
    problems = cv.verify_audit()[1]
    assert problems == [
        "release shop@1.0.0: its labels are not what its events set (edited?)",
        "release shop@1.1.0: succeeded in its table, recalled by its events (edited?)",
        "release shop@9.9.9: no release.create event (added to the table?)",
        "release shop@1.2.0: in the events, not in the table (deleted?)",
    ]


def test_a_promotion_state_edited_in_its_table_is_reported(
    cv: Conveyor, clock: ManualClock
) -> None:
    released(cv)
    cv.create_release("shop", "1.3.0", {"web": f"registry.local/web@{DIGEST}"})
    cv.trigger("main", "shop@1.3.0")
    cv.run_until_idle()
    cv.rollback("qa", "shop@1.0.0")  # 1.0.0's third promotion in qa: the recall made one
    cv.run_until_idle()
    assert cv.verify_audit()[1] == []
    with cv.store.session() as s:
        ids = {r.version: r.id for r in s.scalars(select(ReleaseRow))}
        s.execute(
            update(PromotionRow)
            .where(PromotionRow.release_id == ids["1.1.0"], PromotionRow.environment == "qa")
            .values(state="succeeded")
        )
        s.execute(
            update(PromotionRow)
            .where(PromotionRow.release_id == ids["1.0.0"], PromotionRow.node == "rollback-2")
            .values(state="failed")
        )
    assert cv.verify_audit()[1] == [
        "promotion shop@1.1.0/qa: succeeded in its table, recalled by its events (edited?)",
        "promotion shop@1.0.0/qa (rollback-2): failed in its table, succeeded by its events "
        "(edited?)",
    ]


def test_a_release_terminated_before_its_trigger_leaves_the_engine_idle(
    cv: Conveyor, clock: ManualClock
) -> None:
    """It once made every pass fail on it (it has no flow), and run_until_idle spin."""
    released(cv)
    outcome = cv.engine.run_pass()
    assert not outcome.moved and outcome.next_at is None
