"""Promotion state changes: checked against the state machine and audited, wherever made."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from conveyor.model.states import PromotionState, check_promotion
from conveyor.store import audit
from conveyor.store.tables import PromotionRow, ReleaseRow


def move_promotion(
    session: Session,
    now: datetime,
    actor: str,
    release: ReleaseRow,
    p: PromotionRow,
    state: PromotionState,
    message: str = "",
) -> bool:
    """Move `p` to `state`; False when it is there already."""
    old = PromotionState(p.state)
    if old == state:
        return False
    check_promotion(f"{release.product}@{release.version}/{p.environment}", old, state)
    p.state, p.state_since = state, now
    if message or state.final or old.final:
        p.message = message
    if state.final:
        p.finished_at = now
        p.wait_reason, p.wait_until = "", None
    else:
        p.finished_at = None
    after = {"state": str(state), "message": message} if message else {"state": str(state)}
    audit.append(
        session,
        now,
        actor,
        f"promotion.{state}",
        f"{release.product}@{release.version}/{p.environment}",
        {"state": str(old)},
        after,
    )
    return True
