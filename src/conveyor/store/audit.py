"""The audit trail: append-only events, each carrying the hash of the previous one."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import event, func, insert, or_, select
from sqlalchemy.orm import Session, SessionTransaction

from conveyor.clock import utc
from conveyor.errors import AuditBroken
from conveyor.store import checkpoints, pglocks
from conveyor.store.auditkeys import AUDIT_KEYS, AuditKeys
from conveyor.store.tables import AuditRow, ReleaseRow, TaskRunRow

GENESIS = "0" * 64
_HEAD = "conveyor.audit.head"
# Set in session.info by a store whose engines share it: events are linked into the chain
# as the transaction commits, under the chain's lock, not as they are appended. (An engine
# pass appends from its first step on; holding the chain from there would serialise the
# engines' passes.)
DEFERRED = "conveyor.audit.deferred"
_PENDING = "conveyor.audit.pending"

# Called with each event appended, in its transaction (the notification outbox): whatever
# they write commits or rolls back with the event.
Listener = Callable[[Session, AuditRow], None]
listeners: list[Listener] = []


@event.listens_for(Session, "after_transaction_end")
def _forget_head(session: Session, transaction: SessionTransaction) -> None:
    """The head is remembered within one transaction only: after it, another process may
    append, and the next append reads the head again."""
    if transaction.parent is None:
        session.info.pop(_HEAD, None)
        session.info.pop(_PENDING, None)


@event.listens_for(Session, "before_commit")
def _link_pending(session: Session) -> None:
    """Chain the deferred events, in the order appended, after the head as it is now."""
    pending: list[AuditRow] = session.info.pop(_PENDING, [])
    if not pending:
        return
    session.flush()  # the transaction's own writes first, outside the chain's lock
    pglocks.audit_lock(session)
    prev = _head(session)
    key = _keys(session).chain(create=prev == GENESIS)
    rows = []
    for row in pending:
        row.prev_hash = prev
        row.hash = prev = _digest(
            key, prev, row.at, row.actor, row.action, row.subject, row.before, row.after
        )
        rows.append({c: getattr(row, c) for c in _COLUMNS})
    # One statement for them all (nobody reads these objects back: no ids to return).
    session.execute(insert(AuditRow), rows)


_COLUMNS = ("at", "actor", "action", "subject", "before", "after", "prev_hash", "hash")


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back_head(session: Session, previous: SessionTransaction) -> None:
    """A savepoint rolled back may have held the events the remembered head belongs to.
    (A savepoint released keeps them: the engine releases one per release it looks at.)"""
    session.info.pop(_HEAD, None)


def _digest(
    key: bytes,
    prev: str,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    before: Any,
    after: Any,
) -> str:
    """HMAC-SHA256 with the key kept outside the database: someone who can edit the table
    but not read the key cannot recompute the chain after an edit."""
    body = json.dumps(
        [prev, utc(at).isoformat(), actor, action, subject, before, after],
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


def _keys(session: Session) -> AuditKeys:
    keys = session.info.get(AUDIT_KEYS)
    if not isinstance(keys, AuditKeys):
        raise AuditBroken("this session was not opened by a Store: it has no audit keys")
    return keys


def append(
    session: Session,
    at: datetime,
    actor: str,
    action: str,
    subject: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditRow:
    row = AuditRow(at=at, actor=actor, action=action, subject=subject, before=before, after=after)
    if session.info.get(DEFERRED):
        session.info.setdefault(_PENDING, []).append(row)
    else:
        # The head is remembered for the rest of the transaction: one read, not one per event.
        prev = session.info.get(_HEAD) or _head(session)
        key = _keys(session).chain(create=prev == GENESIS)
        row.prev_hash, row.hash = (
            prev,
            _digest(key, prev, at, actor, action, subject, before, after),
        )
        session.add(row)
        session.info[_HEAD] = row.hash
    for listener in listeners:
        listener(session, row)
    return row


def _head(session: Session) -> str:
    last = session.scalars(select(AuditRow).order_by(AuditRow.id.desc()).limit(1)).first()
    return last.hash if last else GENESIS


def verify(session: Session) -> tuple[int, list[str]]:
    """Walk the chain with the store's key and hold it to the signed checkpoints; return how
    many events were checked and what is broken."""
    keys = _keys(session)
    signed, problems = _signed(keys)
    wanted = {c.count for c in signed}
    hashes: dict[int, str] = {}
    prev, count, key = GENESIS, 0, None
    for row in session.scalars(select(AuditRow).order_by(AuditRow.id)).yield_per(500):
        if key is None:
            try:
                key = keys.chain(create=False)
            except AuditBroken as exc:
                return session.scalar(select(func.count()).select_from(AuditRow)) or 0, [str(exc)]
        count += 1
        if count in wanted:
            hashes[count] = row.hash
        if row.prev_hash != prev:
            problems.append(f"event {row.id}: links to {row.prev_hash[:12]}, expected {prev[:12]}")
        want = _digest(
            key, row.prev_hash, row.at, row.actor, row.action, row.subject, row.before, row.after
        )
        if row.hash != want:
            problems.append(f"event {row.id}: content does not match its hash (edited?)")
        prev = row.hash
    problems += checkpoints.against(signed, hashes, count)
    return count, problems


def _signed(keys: AuditKeys) -> tuple[list[checkpoints.Checkpoint], list[str]]:
    try:
        return checkpoints.read(keys)
    except AuditBroken as exc:
        path = checkpoints.path_of(keys)
        if path is None or not path.exists():
            return [], []  # no key and no checkpoint: a trail never written
        return [], [str(exc)]


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
