"""Engine ownership: a lease per engine process, renewed by a heartbeat.

Each process that runs tasks (`conveyor engine`, `conveyor run --until-idle`) holds a row
in `engine_leases` while it works, renewed every third of its time to live. Every running
task names its engine (`task_runs.owner`). A task is taken over only when its engine's lease
has expired, or its engine was on this host and its process is gone (so an engine restarted
after a crash resumes at once); the take-over is a new attempt, audited as `task.takeover`.
On SQLite one engine serves a database at a time: a second one is refused, naming the one
that serves it, or waits (`--standby`) until that lease expires. On PostgreSQL engines share
the work (claims.py); only `run --until-idle`, which expects to be alone, is refused beside
a live engine, and refuses them.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from conveyor.clock import Clock, utc
from conveyor.engine import due
from conveyor.errors import EngineBusy
from conveyor.model.states import TaskStatus as T
from conveyor.store import audit
from conveyor.store.db import Store
from conveyor.store.tables import EngineLeaseRow, TaskRunRow

TTL = timedelta(seconds=15)
HOST = socket.gethostname()


def alive(lease: EngineLeaseRow, now: datetime) -> bool:
    """A lease is live until it expires; on this host, only while its process lives."""
    if utc(lease.expires_at) <= now:
        return False
    if lease.host == HOST:
        try:
            os.kill(lease.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # someone else's process: it exists
    return True


def describe(lease: EngineLeaseRow) -> str:
    return (
        f"engine {lease.owner} (pid {lease.pid} on {lease.host}, "
        f"since {utc(lease.started_at):%Y-%m-%d %H:%M:%S} UTC)"
    )


def acquire(store: Store, clock: Clock, owner: str, mode: str, ttl: timedelta = TTL) -> None:
    """Take the database's lease for `owner`, or raise EngineBusy naming the live holder.
    Read and written in one unit of work (SQLite takes its write lock up front)."""
    with store.session() as session:
        now = clock.now()
        for lease in session.scalars(select(EngineLeaseRow)):
            if lease.owner == owner:
                continue
            if alive(lease, now):
                if store.shared and mode == lease.mode == "engine":
                    continue  # engines sharing the work
                raise EngineBusy(lease.owner, utc(lease.expires_at), _refusal(lease, mode))
            session.delete(lease)  # expired: its tasks are taken over on the next pass
        mine = session.get(EngineLeaseRow, owner)
        if mine is None:
            session.add(
                EngineLeaseRow(
                    owner=owner,
                    host=HOST,
                    pid=os.getpid(),
                    mode=mode,
                    started_at=now,
                    renewed_at=now,
                    expires_at=now + ttl,
                )
            )
        else:
            mine.mode, mine.renewed_at, mine.expires_at = mode, now, now + ttl


def _refusal(holder: EngineLeaseRow, mode: str) -> str:
    what = describe(holder)
    if mode == "run":
        return (
            f"{what} is serving this database and moves its releases: follow them with "
            "`conveyor release watch`, or stop that engine first"
        )
    return (
        f"{what} is serving this database: stop it first, or start this one with "
        "--standby to take over when it stops"
    )


def renew(store: Store, clock: Clock, owner: str, ttl: timedelta = TTL) -> bool:
    """Extend the lease; False when it is gone (taken over after it expired)."""
    with store.session() as session:
        mine = session.get(EngineLeaseRow, owner)
        if mine is None:
            return False
        now = clock.now()
        mine.renewed_at, mine.expires_at = now, now + ttl
        return True


def release(store: Store, owner: str) -> None:
    with store.session() as session:
        mine = session.get(EngineLeaseRow, owner)
        if mine is not None:
            session.delete(mine)


def live_engines(session: Session, now: datetime) -> list[str]:
    """The engines sharing the work now, in a fixed order."""
    leases = session.scalars(select(EngineLeaseRow).where(EngineLeaseRow.mode == "engine"))
    return sorted(lease.owner for lease in leases if alive(lease, now))


def take_over(session: Session, now: datetime, owner: str, actor: str) -> set[int]:
    """Queue again, as a new attempt, the running tasks of engines whose lease is not live;
    the ids of their releases (due now). A row another engine is taking over is skipped."""
    running = TaskRunRow.status == T.RUNNING
    others = set(
        session.scalars(select(TaskRunRow.owner).where(running, TaskRunRow.owner != owner))
    )
    if not others:
        return set()
    dead = others - {
        lease.owner for lease in session.scalars(select(EngineLeaseRow)) if alive(lease, now)
    }
    if not dead:
        return set()  # their engines are alive and running them: never touched
    stray = session.scalars(
        select(TaskRunRow)
        .where(running, TaskRunRow.owner.in_(dead))
        .with_for_update(skip_locked=True)
    )
    taken: set[int] = set()
    for row in stray:
        # Actions are idempotent: the new attempt finishes what the dead engine began.
        row.status, row.takeovers = T.QUEUED, row.takeovers + 1
        audit.append(
            session,
            now,
            actor,
            "task.takeover",
            audit.task_subject(session, row),
            {"owner": row.owner, "attempt": row.attempt},
            {"attempt": row.attempt + 1, "why": "its engine's lease expired"},
        )
        taken.add(row.release_id)
    due.mark_ids(session, taken, now)
    return taken


class Heartbeat:
    """Renews a lease every third of its time to live on a thread of its own; calls
    `lost` if the lease was taken meanwhile."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        owner: str,
        lost: Callable[[], None],
        ttl: timedelta = TTL,
    ) -> None:
        self._store, self._clock, self._owner, self._ttl = store, clock, owner, ttl
        self._lost = lost
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        interval = self._ttl.total_seconds() / 3
        while not self._stop.wait(interval):
            try:
                kept = renew(self._store, self._clock, self._owner, self._ttl)
            except Exception:  # a locked database: try again at the next beat
                continue
            if not kept:
                self._lost()
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
