"""PostgreSQL's locks, as Conveyor uses them to share one database between processes.

- Every unit of work takes the *store lock*: exclusively for what people and API processes
  write (the single-writer semantics SQLite's BEGIN IMMEDIATE gives), shared for engine
  passes, so that several engines decide at once while no write of a person's interleaves
  with any of them.
- Between engines, finer locks: a product is looked at by one engine at a time, an
  environment is claimed by one at a time (both taken with try-locks: what another engine
  holds is skipped, as SKIP LOCKED skips rows), and the audit chain's head is read and
  extended under its own lock, taken only as a pass commits.

Transaction-level advisory locks: released by the transaction's end, or the connection's,
so a killed process holds nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.orm import Session

# Any fixed number (not the migrations'). Single-key and two-key advisory locks are
# separate spaces in PostgreSQL, so the namespaced locks below never meet this one.
STORE = 0x636F6E77
_PRODUCT, _ENVIRONMENT, _AUDIT = 0x636F6E01, 0x636F6E02, 0x636F6E03


def store_lock(session: Session, shared: bool) -> None:
    fn = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    session.execute(text(f"SELECT {fn}({STORE})"))


def audit_lock(session: Session) -> None:
    """Held from reading the chain's head to the commit that extends it."""
    session.execute(text("SELECT pg_advisory_xact_lock(:ns, 0)"), {"ns": _AUDIT})


def try_products(session: Session, products: Iterable[str]) -> set[str]:
    """The products this transaction now holds, of those asked (others hold the rest)."""
    return _try(session, _PRODUCT, products)


def try_environments(session: Session, environments: Iterable[str]) -> set[str]:
    return _try(session, _ENVIRONMENT, environments)


def _try(session: Session, namespace: int, names: Iterable[str]) -> set[str]:
    names = sorted(set(names))
    if not names:
        return set()
    with session.no_autoflush:  # a lock needs nothing flushed; flushes batch better later
        rows = session.execute(
            text(
                "SELECT n FROM unnest(CAST(:names AS text[])) AS n "
                "WHERE pg_try_advisory_xact_lock(:ns, hashtext(n))"
            ),
            {"names": names, "ns": namespace},
        )
        return {str(n) for n in rows.scalars()}
