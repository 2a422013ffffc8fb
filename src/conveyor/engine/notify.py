"""Which events reach which notification sinks.

Notifications come from the audit trail: each event that matters (a promotion failed or
succeeded, an approval requested, a release recalled, a rollback, a window overridden, the
audit found broken) adds one outbox row per sink that wants it, in the event's own
transaction. An engine that dies between the event and the delivery loses nothing: the row
is there for the next one (engine/delivery.py sends it).
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from conveyor.clock import utc
from conveyor.engine import resources
from conveyor.model.definitions import NotificationSpec
from conveyor.store import audit
from conveyor.store.tables import AuditRow, OutboxRow

KIND = "NotificationSink"
_WROTE = "conveyor.outbox.wrote"
# Set when a transaction that wrote to the outbox commits in this process: the delivery
# thread wakes at once (rows other processes write, it finds on its next look).
outbox_written = threading.Event()

# The audit action each notification event comes from.
EVENTS = {
    "promotion.failed": "promotion.failed",
    "promotion.succeeded": "promotion.succeeded",
    "approval.requested": "approval.requested",
    "release.recall": "release.recalled",
    "rollback": "rollback",
    "window.override": "window.override",
    "audit.verify-failed": "audit.verify-failed",
}


def sinks(session: Session) -> dict[str, NotificationSpec]:
    return {
        c.name: NotificationSpec.model_validate(c.spec)
        for c in resources.list_current(session, KIND)
    }


def enqueue(session: Session, row: AuditRow) -> None:
    """An outbox row for each sink that wants the notification `row` makes (if any)."""
    event = EVENTS.get(row.action)
    if event is None:
        return
    product, version, environment = _parts(row.subject)
    for name, spec in sinks(session).items():
        if event not in spec.events or not _selects(spec, event, product, environment):
            continue
        payload: dict[str, Any] = {
            "deliveryId": uuid.uuid4().hex,  # the same on every retry: receivers drop repeats
            "event": event,
            "at": utc(row.at).isoformat(),
            "actor": row.actor,
            "subject": row.subject,
            "product": product,
            "version": version,
            "environment": environment,
            "details": row.after or {},
        }
        session.add(
            OutboxRow(
                sink=name,
                event=event,
                payload=payload,
                created_at=row.at,
                attempts=0,
                next_attempt_at=row.at,
                last_error="",
            )
        )
        session.info[_WROTE] = True


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    if session.info.pop(_WROTE, False):
        outbox_written.set()


@event.listens_for(Session, "after_rollback")
def _rolled_back(session: Session) -> None:
    session.info.pop(_WROTE, None)


def _selects(spec: NotificationSpec, event: str, product: str, environment: str) -> bool:
    if event == "audit.verify-failed":  # about every product and environment at once
        return True
    if spec.products and product not in spec.products:
        return False
    return not spec.environments or environment in spec.environments


def _parts(subject: str) -> tuple[str, str, str]:
    """`shop@1.2.3/prod` -> (shop, 1.2.3, prod); missing parts are empty."""
    ref, _, rest = subject.partition("/")
    product, _, version = ref.partition("@")
    return (product, version, rest.split("/", 1)[0]) if version else ("", "", "")


def install() -> None:
    """Make every audit event in this process pass by `enqueue` (once)."""
    if enqueue not in audit.listeners:
        audit.listeners.append(enqueue)
