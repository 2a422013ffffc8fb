"""What runs where: for each product and environment, the version running there, since
when, how its newest promotion went, and what is on its way (`conveyor status`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from conveyor.engine import resources
from conveyor.model.states import PromotionState as P
from conveyor.store.tables import PromotionRow, ReleaseRow

# A promotion in one of these is on its way to its environment.
ON_ITS_WAY = (P.PENDING, P.WAITING, P.RUNNING, P.VERIFYING)


@dataclass(frozen=True)
class Incoming:
    version: str
    state: str
    since: datetime
    detail: str


@dataclass(frozen=True)
class EnvironmentStatus:
    product: str
    environment: str
    version: str | None  # running there; None if never deployed
    since: datetime | None
    rollback: bool  # put there by a rollback or a recall
    last_version: str | None  # the newest promotion's, when it is not the running one
    last_state: str | None
    incoming: list[Incoming] = field(default_factory=list)


def status(session: Session, product: str | None = None) -> list[EnvironmentStatus]:
    """One row per product and environment it has reached or is heading to, environments in
    flow order (then by name)."""
    products = sorted(resources.products(session))
    if product is not None:
        resources.get_current(session, "Product", product)  # NotFound names the product
        products = [product]
    q = (
        select(PromotionRow, ReleaseRow)
        .join(ReleaseRow, PromotionRow.release_id == ReleaseRow.id)
        .where(ReleaseRow.product.in_(products))
        .order_by(PromotionRow.id)
    )
    running: dict[tuple[str, str], tuple[PromotionRow, ReleaseRow]] = {}
    newest: dict[tuple[str, str], tuple[PromotionRow, ReleaseRow]] = {}
    incoming: dict[tuple[str, str], list[Incoming]] = {}
    for p, r in session.execute(q):
        key = (r.product, p.environment)
        if p.state not in ON_ITS_WAY:
            newest[key] = (p, r)
        if p.state == P.SUCCEEDED:
            held = running.get(key)
            if held is None or (p.finished_at, p.id) >= (held[0].finished_at, held[0].id):
                running[key] = (p, r)
        elif p.state in ON_ITS_WAY:
            detail = p.wait_reason or p.message
            incoming.setdefault(key, []).append(Incoming(r.version, p.state, p.state_since, detail))
    order = _environment_order(session)
    rows = []
    keys = set(newest) | set(incoming)
    for key in sorted(keys, key=lambda k: (k[0], order.get(k[1], len(order)), k[1])):
        now_p, now_r = running.get(key, (None, None))
        last_p, last_r = newest.get(key, (None, None))
        last_is_running = last_p is None or (now_p is not None and last_p.id == now_p.id)
        rows.append(
            EnvironmentStatus(
                key[0],
                key[1],
                now_r.version if now_r else None,
                (now_p.finished_at or now_p.state_since) if now_p else None,
                bool(now_p and now_p.rollback),
                None if last_is_running or last_r is None else last_r.version,
                None if last_is_running or last_p is None else last_p.state,
                incoming.get(key, []),
            )
        )
    return rows


def _environment_order(session: Session) -> dict[str, int]:
    """Environments as the flows list them (trigger environment first), so dev comes
    before qa before prod."""
    order: dict[str, int] = {}
    for c in resources.list_current(session, "PromotionFlow"):
        for name in [c.spec.triggerEnvironment, *(n.name for n in c.spec.environments)]:
            order.setdefault(name, len(order))
    return order
