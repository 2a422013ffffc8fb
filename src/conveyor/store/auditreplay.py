"""`audit verify` replays the events: what they say releases and promotions became must be
what their tables hold. The chain proves the events; this proves the tables agree with them
(an edit of a table alone, a row added without its events, or one deleted)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from conveyor.store.tables import AuditRow, PromotionRow, ReleaseRow


def disagreements(session: Session) -> list[str]:
    return releases(session) + promotions(session)


def releases(session: Session) -> list[str]:
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


def promotions(session: Session) -> list[str]:
    """Each promotion's state against its last `promotion.STATE` event. Promotions start
    pending without an event; a rollback's carry its node, as two can share an environment."""
    said: dict[tuple[str, str | None], str] = {}
    events = select(AuditRow.action, AuditRow.subject, AuditRow.after).where(
        AuditRow.action.startswith("promotion.")
    )
    for action, subject, after in session.execute(events.order_by(AuditRow.id)):
        said[(subject, (after or {}).get("node"))] = action.removeprefix("promotion.")
    rows = session.execute(
        select(PromotionRow, ReleaseRow.product, ReleaseRow.version)
        .join(ReleaseRow, ReleaseRow.id == PromotionRow.release_id)
        .order_by(PromotionRow.id)
    )
    problems = []
    for p, product, version in rows:
        subject = f"{product}@{version}/{p.environment}"
        key = (subject, p.node if p.rollback else None)
        events_say = said.pop(key, "pending")
        if events_say != p.state:
            what = f"promotion {subject}" + (f" ({p.node})" if p.rollback else "")
            problems.append(f"{what}: {p.state} in its table, {events_say} by its events (edited?)")
    problems += [
        f"promotion {subject}: in the events, not in the table (deleted?)"
        for subject, _node in said
    ]
    return problems
