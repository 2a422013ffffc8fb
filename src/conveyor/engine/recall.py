"""Recall: a release judged bad is stopped everywhere and taken out of where it runs (seed 001).

By a `canary` gate's recall condition or by `conveyor release recall`. In one transaction:
the release becomes `recalled`; its promotions not yet deploying are skipped, deploying
ones terminated (a verifying one recalled); every environment where it runs, or was being
deployed, gets a rollback promotion of the release deployed there before it, which the
engine runs like any rollback. A second recall changes nothing, and since it all commits
at once an engine stopped halfway has either recalled or not, and resumes the rollbacks.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from conveyor.engine import due, rollback
from conveyor.engine.transitions import move_promotion
from conveyor.model.release import newer
from conveyor.model.schedule import recall_stop, touched_by_recall
from conveyor.model.states import PromotionState as P
from conveyor.model.states import ReleaseStatus as R
from conveyor.model.states import TaskStatus as T
from conveyor.model.states import check_release
from conveyor.store import audit
from conveyor.store.tables import PromotionRow, ReleaseRow, TaskRunRow


def recall(session: Session, release: ReleaseRow, reason: str, actor: str, now: datetime) -> bool:
    """Recall `release`; False when it was recalled already (nothing changes then)."""
    if release.status == R.RECALLED:
        return False
    ref = f"{release.product}@{release.version}"
    before = release.status
    check_release(ref, R(release.status), R.RECALLED)
    release.status, release.message, release.finished_at = R.RECALLED, reason, now
    due.mark(session, release, now)
    audit.append(session, now, actor, "release.recall", ref, {"status": before}, {"reason": reason})
    promotions = session.scalars(
        select(PromotionRow).where(PromotionRow.release_id == release.id).order_by(PromotionRow.id)
    ).all()
    touched: list[str] = []
    for p in promotions:
        if p.rollback:
            if not P(p.state).final:
                move_promotion(session, now, actor, release, p, P.TERMINATED, f"recalled: {reason}")
            continue
        was = P(p.state)
        if touched_by_recall(was):
            touched.append(p.environment)
        stop = recall_stop(was)
        if stop is not None:
            move_promotion(session, now, actor, release, p, stop, f"recalled: {reason}")
    for row in session.scalars(
        select(TaskRunRow).where(
            TaskRunRow.release_id == release.id,
            TaskRunRow.status.in_([T.QUEUED, T.RETRYING, T.POLLING]),
        )
    ):
        row.status, row.finished_at, row.error = T.CANCELLED, now, "release recalled"
    session.flush()
    for environment in dict.fromkeys(touched):
        _roll_back(session, release, environment, reason, actor, now)
    return True


def _roll_back(
    session: Session, release: ReleaseRow, environment: str, reason: str, actor: str, now: datetime
) -> None:
    """Put back the release that ran in `environment` before `release`, if there was one
    and nothing newer has replaced `release` there since."""
    # `deployed` lists succeeded promotions; the recalled one is no longer among them.
    previous = [
        (p, r)
        for p, r in rollback.deployed(session, environment, release.product)
        if r.id != release.id and r.status != R.RECALLED
    ]
    if not previous:
        audit.append(
            session,
            now,
            actor,
            "recall.no-rollback",
            f"{release.product}@{release.version}/{environment}",
            None,
            {"why": "no earlier release was deployed there"},
        )
        return
    newest = previous[0][1]
    if newer(newest.version, release.version):
        return  # a newer release already replaced it there
    rollback.start(
        session,
        environment,
        newest,
        release,
        previous,
        revert=False,
        actor=actor,
        now=now,
        reason=f"recall of {release.version}: {reason}",
    )
