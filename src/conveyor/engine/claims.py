"""Which due releases an engine looks at in a pass, when several engines share the store.

On SQLite an engine is alone: it looks at every release due. On PostgreSQL the live
engines (their leases) split the products between them by a hash of the product's name,
so each product's releases are decided, their tasks started and their results stored by
one engine while the set of engines is stable, with no coordinator and no messages. When
an engine joins or dies the split changes at once, and two engines may briefly both think
a product theirs: a try-lock on the product decides which one looks this pass (the other
skips it, as SKIP LOCKED skips rows), and the release rows are claimed with
`SELECT ... FOR UPDATE SKIP LOCKED`. Everything a product's releases share (what is
deployed, which version is newer, its queue) is thereby decided by one engine at a time;
what products share, environments, is claimed under an environment lock (promotions.py).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from conveyor.engine import lease
from conveyor.store import pglocks
from conveyor.store.tables import ReleaseRow

# A due product another engine was looking at: looked at again this soon (its pass ends).
RETRY = timedelta(milliseconds=100)


@dataclass(frozen=True)
class Claim:
    releases: list[ReleaseRow]
    products: frozenset[str] | None  # this engine's share; None: every product
    retry_at: datetime | None = None  # some due product was held by another engine
    owner: str = ""
    engines: tuple[str, ...] = ()  # the live engines sharing the work, when several

    def mine(self, name: str) -> bool:
        """Whether `name` (a product, an environment) is this engine's to look after."""
        return self.products is None or share(name, list(self.engines)) == self.owner

    def next_at(self, session: Session) -> datetime | None:
        """When this engine has something due next (after the pass stored its times)."""
        q = select(func.min(ReleaseRow.next_look_at))
        if self.products is not None:
            if not self.products:
                return self.retry_at
            q = q.where(ReleaseRow.product.in_(self.products))
        found = session.scalar(q)
        return min((t for t in (found, self.retry_at) if t is not None), default=None)


def share(product: str, engines: list[str]) -> str:
    """The engine whose share `product` is (a stable hash: the same in every process)."""
    return engines[zlib.crc32(product.encode()) % len(engines)]


def claim(session: Session, now: datetime, owner: str, shared: bool) -> Claim:
    due = ReleaseRow.next_look_at <= now
    if not shared:
        return Claim(
            list(session.scalars(select(ReleaseRow).where(due).order_by(ReleaseRow.id))), None
        )
    engines = lease.live_engines(session, now)
    products: frozenset[str] | None = None
    if owner in engines and len(engines) > 1:
        waiting = session.scalars(
            select(ReleaseRow.product).where(ReleaseRow.next_look_at.is_not(None)).distinct()
        )
        products = frozenset(p for p in waiting if share(p, engines) == owner)
    candidates = select(ReleaseRow.product).where(due).distinct()
    if products is not None:
        candidates = candidates.where(ReleaseRow.product.in_(products))
    wanted = set(session.scalars(candidates))
    held = pglocks.try_products(session, wanted)
    releases = (
        list(
            session.scalars(
                select(ReleaseRow)
                .where(due, ReleaseRow.product.in_(held))
                .order_by(ReleaseRow.id)
                .with_for_update(skip_locked=True)
            )
        )
        if held
        else []
    )
    retry_at = now + RETRY if held != wanted else None
    return Claim(
        releases, products, retry_at, owner, tuple(engines) if products is not None else ()
    )
