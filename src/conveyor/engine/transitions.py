"""Promotion state changes: checked against the state machine and audited, wherever made."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from conveyor.engine import due
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
    freed: set[str] | None = None,
) -> bool:
    """Move `p` to `state`; False when it is there already.

    When `p` leaves its environment, or stops waiting for it, the next release waiting
    for that environment is woken: its name is added to `freed` (a pass wakes them all
    at its end), or without `freed`, at once."""
    old = PromotionState(p.state)
    if old == state:
        return False
    check_promotion(f"{release.product}@{release.version}/{p.environment}", old, state)
    leaves = (old.holds_environment and not state.holds_environment) or (
        old == PromotionState.WAITING and state.final
    )
    p.state, p.state_since = state, now
    if message or state.final or old.final:
        p.message = message
    if state.final:
        p.finished_at = now
        p.wait_reason, p.wait_until = "", None
    else:
        p.finished_at = None
    after = {"state": str(state), "message": message} if message else {"state": str(state)}
    if p.rollback:  # it shares its environment's subject with the release's own promotion
        after["node"] = p.node
    audit.append(
        session,
        now,
        actor,
        f"promotion.{state}",
        f"{release.product}@{release.version}/{p.environment}",
        {"state": str(old)},
        after,
    )
    if leaves and freed is not None:
        freed.add(p.environment)
    elif leaves:
        due.environments_freed(session, [p.environment], now)
    return True
