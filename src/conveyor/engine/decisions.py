"""People's decisions on a promotion as gates read them: approvals, rejections, overrides,
and who had a hand in the release (for separation of duties)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from conveyor.model.approval import Approval
from conveyor.store.tables import ApprovalRow, AuditRow, ReleaseRow


def decisions(session: Session, promotion_id: int) -> list[Approval]:
    rows = session.scalars(
        select(ApprovalRow).where(ApprovalRow.promotion_id == promotion_id).order_by(ApprovalRow.id)
    )
    return [Approval(r.user, tuple(r.groups), r.verdict, r.at, r.comment) for r in rows]


def release_actors(session: Session, release: ReleaseRow) -> frozenset[str]:
    """Who created, triggered or labelled the release, as the audit trail names them."""
    ref = f"{release.product}@{release.version}"
    labelled = session.scalars(
        select(AuditRow.actor).where(AuditRow.subject == ref, AuditRow.action == "release.label")
    )
    named = {release.created_by, release.triggered_by or "", *labelled}
    return frozenset(a for a in named if a)
