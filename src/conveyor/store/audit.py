"""The audit trail: append-only events, each carrying the hash of the previous one."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy import event, or_, select
from sqlalchemy.orm import Session, SessionTransaction

from conveyor.clock import utc
from conveyor.store.tables import AuditRow, ReleaseRow, TaskRunRow

GENESIS = "0" * 64
_HEAD = "conveyor.audit.head"


@event.listens_for(Session, "after_transaction_end")
def _forget_head(session: Session, transaction: SessionTransaction) -> None:
    """The head is remembered within one transaction only: after it, another process may
    append, and the next append reads the head again."""
    if transaction.parent is None:
        session.info.pop(_HEAD, None)


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back_head(session: Session, previous: SessionTransaction) -> None:
    """A savepoint rolled back may have held the events the remembered head belongs to.
    (A savepoint released keeps them: the engine releases one per release it looks at.)"""
    session.info.pop(_HEAD, None)


def _digest(
    prev: str, at: datetime, actor: str, action: str, subject: str, before: Any, after: Any
) -> str:
    body = json.dumps(
        [prev, utc(at).isoformat(), actor, action, subject, before, after],
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(body.encode()).hexdigest()


def append(
    session: Session,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditRow:
    # The chain's head is remembered for the rest of the transaction: one read, not one per event.
    prev = session.info.get(_HEAD)
    if prev is None:
        last = session.scalars(select(AuditRow).order_by(AuditRow.id.desc()).limit(1)).first()
        prev = last.hash if last else GENESIS
    row = AuditRow(
        at=at,
        actor=actor,
        action=action,
        subject=subject,
        before=before,
        after=after,
        prev_hash=prev,
        hash=_digest(prev, at, actor, action, subject, before, after),
    )
    session.add(row)
    session.info[_HEAD] = row.hash
    return row


def verify(session: Session) -> tuple[int, list[str]]:
    """Walk the chain; return how many events were checked and what is broken."""
    problems: list[str] = []
    prev = GENESIS
    count = 0
    for row in session.scalars(select(AuditRow).order_by(AuditRow.id)).yield_per(500):
        count += 1
        if row.prev_hash != prev:
            problems.append(f"event {row.id}: links to {row.prev_hash[:12]}, expected {prev[:12]}")
        want = _digest(
            row.prev_hash, row.at, row.actor, row.action, row.subject, row.before, row.after
        )
        if row.hash != want:
            problems.append(f"event {row.id}: content does not match its hash (edited?)")
        prev = row.hash
    return count, problems


def disagreements(session: Session) -> list[str]:
    """Releases whose status or labels in their table are not what their events say: an
    edit of the table alone (the chain cannot see it), or a release without its events."""
    said: dict[str, dict[str, Any]] = {}
    events = select(AuditRow.action, AuditRow.subject, AuditRow.after).where(
        AuditRow.action.startswith("release.")
    )
    for action, subject, after in session.execute(events.order_by(AuditRow.id)):
        state = said.setdefault(subject, {})
        after = after or {}
        if action == "release.create":
            state.update(status="created", labels=after.get("labels", {}))
        elif action == "release.recall":
            state["status"] = "recalled"
        elif "status" in after:
            state["status"] = after["status"]
        if action == "release.label":
            state["labels"] = after.get("labels", {})
    problems = []
    for release in session.scalars(select(ReleaseRow).order_by(ReleaseRow.id)):
        ref = f"{release.product}@{release.version}"
        events_say = said.pop(ref, None)
        if events_say is None or "status" not in events_say:
            problems.append(f"release {ref}: no release.create event (added to the table?)")
            continue
        if events_say["status"] != release.status:
            problems.append(
                f"release {ref}: {release.status} in its table, {events_say['status']} by its "
                "events (edited?)"
            )
        if events_say.get("labels", {}) != release.labels:
            problems.append(f"release {ref}: its labels are not what its events set (edited?)")
    problems += [f"release {ref}: in the events, not in the table (deleted?)" for ref in said]
    return problems


def task_subject(session: Session, row: TaskRunRow) -> str:
    """`shop@1.2.3/prod/step.deploy/web`: a task's events carry its release, so that
    `audit log --release` and `--env` find them."""
    release = session.get(ReleaseRow, row.release_id)
    ref = f"{release.product}@{release.version}" if release else f"release-{row.release_id}"
    return f"{ref}/{row.scope}/{row.stage}/{row.task}"


def events(
    session: Session,
    release: str | None = None,
    environment: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[AuditRow]:
    """The newest `limit` events matching every filter given, oldest first.

    Subjects name what an event is about: `shop@1.2.3`, `shop@1.2.3/prod`,
    `shop@1.2.3/prod/step.deploy/web`, `Environment/prod`; the filters match on them."""
    q = select(AuditRow)
    if release:
        q = q.where(
            or_(
                AuditRow.subject == release,
                AuditRow.subject.startswith(release + "/", autoescape=True),
            )
        )
    if environment:
        q = q.where(
            or_(
                AuditRow.subject.endswith("/" + environment, autoescape=True),
                AuditRow.subject.contains("/" + environment + "/", autoescape=True),
            )
        )
    if actor:  # "local:root as alice" is both local:root's and alice's
        q = q.where(
            or_(
                AuditRow.actor == actor,
                AuditRow.actor.endswith(" as " + actor, autoescape=True),
                AuditRow.actor.startswith(actor + " as ", autoescape=True),
            )
        )
    if since:
        q = q.where(AuditRow.at >= since)
    newest = list(session.scalars(q.order_by(AuditRow.id.desc()).limit(limit)))
    return newest[::-1]
