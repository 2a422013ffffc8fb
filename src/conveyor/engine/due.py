"""When the engine must look at a release again: `releases.next_look_at`.

A pass reads only the releases due by now, so its cost follows the work due, not the
releases open. The pass itself stores each release's next time (the earliest gate
deadline, retry or poll it met; none when it waits only for an event). Everything else
that can change what a release may do marks it due here: a person's write (trigger,
label, retry, recall, rollback), a health report read by a gate it waits at, an
environment another promotion left, a definition applied.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import ColumnElement, case, func, or_, select, update
from sqlalchemy.orm import Session

from conveyor.model.states import PromotionState as P
from conveyor.model.states import ReleaseStatus as R
from conveyor.store.tables import PromotionRow, ReleaseRow


def _not_due_yet(now: datetime) -> ColumnElement[bool]:
    return or_(ReleaseRow.next_look_at.is_(None), ReleaseRow.next_look_at > now)


def mark(session: Session, release: ReleaseRow, now: datetime) -> None:
    """`release` is due now (it may already be sooner)."""
    if release.next_look_at is None or release.next_look_at > now:
        release.next_look_at = now


def mark_ids(session: Session, ids: Iterable[int], now: datetime) -> None:
    """These releases are due now. Every row is written, even one due already: the write
    waits for an engine looking at that release in its own pass (which holds the row) and
    lands after it, or keeps that engine from claiming the row until it lands. (Skipping a
    row due already lost a task's result when another engine, looking at that release at
    the same time, read the task still running and stored "nothing due".)"""
    ids = list(ids)
    if ids:
        session.execute(
            update(ReleaseRow)
            .where(ReleaseRow.id.in_(ids))
            .values(next_look_at=case((_not_due_yet(now), now), else_=ReleaseRow.next_look_at))
            .execution_options(synchronize_session=False)
        )


def health_reported(session: Session, now: datetime) -> None:
    """A health report arrived: releases waiting at a gate that reads health are due."""
    session.execute(
        update(ReleaseRow)
        .where(ReleaseRow.watch_health.is_(True), _not_due_yet(now))
        .values(next_look_at=now)
        .execution_options(synchronize_session=False)
    )


BUSY = "environment busy"  # how a promotion waiting for its environment says so


def environments_freed(session: Session, environments: Iterable[str], now: datetime) -> None:
    """A promotion left these environments, or stopped waiting for them: the oldest release
    waiting only for each is due. (Waking every waiter would have them all look, and all
    but one find it taken again. The baton passes on: when that one deploys and leaves, or
    stops waiting, the next is woken.)"""
    environments = list(environments)
    if not environments:
        return
    oldest = (
        select(func.min(PromotionRow.release_id))
        .where(
            PromotionRow.environment.in_(environments),
            PromotionRow.state == P.WAITING,
            PromotionRow.wait_reason.startswith(BUSY),
        )
        .group_by(PromotionRow.environment)
    )
    mark_ids(session, list(session.scalars(oldest)), now)


def definitions_changed(session: Session, now: datetime) -> None:
    """A definition was applied or deleted: every running release takes a fresh look."""
    session.execute(
        update(ReleaseRow)
        .where(ReleaseRow.status == R.RUNNING, _not_due_yet(now))
        .values(next_look_at=now)
        .execution_options(synchronize_session=False)
    )
