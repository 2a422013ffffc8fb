"""The engine: level-triggered passes that move every open release as far as it can go.

A pass reads the state, never remembers it: after a crash, a restart or a duplicated
event, the next pass does the right thing. The engine sleeps until the earliest time a
gate or a retry asked for, or until woken by an event (a task finished, a write).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from conveyor.clock import Clock, utc
from conveyor.engine import claims, collect, due, lease, wakeup
from conveyor.engine.auditsign import Signer
from conveyor.engine.backoff import backoff
from conveyor.engine.context import template_context
from conveyor.engine.parsed import Parsed
from conveyor.engine.passctx import PassContext
from conveyor.engine.passtimes import passes
from conveyor.engine.probes import Prober, ProbeStatus
from conveyor.engine.promotions import advance, is_ready
from conveyor.engine.registry import Registry, default_registry
from conveyor.engine.rollback import recall_newer
from conveyor.engine.runner import Finished, TaskRunner
from conveyor.errors import EngineBusy
from conveyor.model.definitions import TaskDef
from conveyor.model.plan import Stage
from conveyor.model.schedule import Outcome, conclude
from conveyor.model.states import PromotionState as P
from conveyor.model.states import ReleaseStatus as R
from conveyor.store.db import Store
from conveyor.store.tables import PromotionRow, ReleaseRow

RESYNC = timedelta(seconds=5)
QUARANTINE_TRIES = 10  # releases set aside in one pass before giving up until the next
log = logging.getLogger(__name__)


class _Broken(Exception):
    """Looking at a release raised: the pass is rolled back and that release set aside."""

    def __init__(self, release_id: int) -> None:
        super().__init__(release_id)
        self.release_id = release_id


@dataclass(frozen=True)
class PassOutcome:
    moved: bool
    next_at: datetime | None
    inflight: int


class Engine:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        registry: Registry | None = None,
        workdir: Path | None = None,
        max_workers: int = 64,
        data_dir: Path | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.registry = registry or default_registry()
        self.workdir = workdir or Path.cwd()
        self.data_dir = data_dir or self.workdir / ".conveyor"
        self.runner = TaskRunner(max_workers)
        self.owner = f"engine-{uuid.uuid4().hex[:12]}"
        self.wake = self.runner.wake
        self.prober = Prober(clock, self.wake)
        self._stop = threading.Event()
        # Set to wake a standby's wait for the lease (stop() sets it too).
        self._standby_wake = threading.Event()
        self.standing_by = False
        self.signer = Signer(store, clock)
        self.parsed = Parsed()
        self._notify_sql = wakeup.notify_sql(store.engine.url)
        # The last pass's claim: which products and environments are this engine's.
        self.claim = claims.Claim([], None)
        # Releases whose look failed, and how many times in a row: their backoff grows.
        self._failures: dict[int, int] = {}
        # Tasks finished and collected from the runner, until a pass has stored them.
        self._finished: list[Finished] = []

    # --- one pass ------------------------------------------------------------------

    def run_pass(self) -> PassOutcome:
        """Look at the releases due by now (a fixed number of queries to load them), store
        when each is due next, and start the tasks decided.

        Whatever goes wrong while looking at one release (a bug, a broken plugin outside the
        gates' own guard) rolls the pass back; that release is set aside with a growing
        backoff, and the pass runs again without it: no other release is held up.
        """
        self.wake.clear()
        self._finished.extend(self.runner.collect())
        for _ in range(QUARANTINE_TRIES):
            try:
                with passes.timed():
                    return self._pass()
            except _Broken as broken:
                self._set_aside(broken.release_id)
        return PassOutcome(False, self.clock.now() + RESYNC, self.runner.inflight)

    def _pass(self) -> PassOutcome:
        with self.store.session(engine_pass=True) as session:
            pc = PassContext(
                session,
                self.clock.now(),
                self.registry,
                self.runner,
                self.owner,
                self.workdir,
                self.data_dir,
                self.parsed,
                shared=self.store.shared,
                clock=self.clock,
            )
            self._collect(pc)
            self.prober.record(session, pc.now)
            claim = claims.claim(session, pc.now, self.owner, self.store.shared)
            self.claim = replace(claim, releases=[])  # kept for `mine`, not its rows
            pc.preload(claim.releases)
            pc.lock_environments(claim.releases)
            for release in claim.releases:
                self._look_at(pc, release)
            due.environments_freed(session, pc.freed, pc.now)
            next_at = claim.next_at(session)
            if pc.moved and claim.products is not None and self._notify_sql:
                # What it freed or finished may be another engine's share: wake them.
                session.execute(text(self._notify_sql))
        self._finished.clear()  # stored for good
        pc.start_tasks()
        self.parsed.trim()
        return PassOutcome(pc.moved, utc(next_at) if next_at else None, self.runner.inflight)

    def _look_at(self, pc: PassContext, release: ReleaseRow) -> None:
        pc.begin_release()
        moved = pc.moved
        pc.moved = False
        try:
            self._release(pc, release)
        except Exception as exc:
            log.exception("looking at %s@%s failed", release.product, release.version)
            raise _Broken(release.id) from exc
        self._failures.pop(release.id, None)
        if pc.moved:
            release.next_look_at = pc.now  # it moved: one more look, until a look moves nothing
        else:
            release.next_look_at = min(pc.release_wakes) if pc.release_wakes else None
        release.watch_health = pc.release_watches_health
        pc.moved = pc.moved or moved

    def _set_aside(self, release_id: int) -> None:
        failures = self._failures[release_id] = self._failures.get(release_id, 0) + 1
        with self.store.session() as session:
            release = session.get(ReleaseRow, release_id)
            if release is not None:
                release.next_look_at = self.clock.now() + backoff(failures)

    def _collect(self, pc: PassContext) -> None:
        """Store finished tasks, stop those of releases stopped elsewhere, and re-queue
        tasks whose engine died (resume, take-over)."""
        collect.finished(pc, self._finished)
        collect.stopped(pc, self.runner)
        # Tasks whose engine died (one query; two when some other engine's task runs).
        if lease.take_over(pc.session, pc.now, self.owner, pc.actor):
            pc.moved = True

    # --- one release ---------------------------------------------------------------

    def _release(self, pc: PassContext, release: ReleaseRow) -> None:
        flow = pc.flow(release)
        graph, start, finish = flow.graph, flow.start, flow.finish
        template = template_context(release, None, pc.environments)
        done = list(release.hooks_done)

        if release.status == R.RUNNING and start and start.key not in done:
            status, reason = pc.drive_tasks(release, None, start.key, start.tasks, template)
            if status == "running":
                return
            if status == "failed":
                pc.set_status(release, R.FAILED, f"release onStart hook: {reason}")
            else:
                release.hooks_done = [*done, start.key]
                done = release.hooks_done

        promotions = pc.promotions(release)
        by_node: dict[str, list[PromotionRow]] = {}
        for p in promotions:
            if not p.rollback:
                by_node.setdefault(p.node, []).append(p)
        if release.status == R.RUNNING or any(p.state != P.PENDING for p in promotions):
            for node in graph.order():
                parents = [
                    q for parent in graph.nodes[node].parents for q in by_node.get(parent, [])
                ]
                upstream = sorted({q.environment for q in parents})
                for p in by_node.get(node, []):
                    if p.state == P.PENDING:
                        if release.status != R.RUNNING or not is_ready(parents):
                            continue
                        pc.move(p, release, P.WAITING)
                    advance(pc, release, p, upstream)
        for p in promotions:
            if p.rollback and P(p.state).active:
                advance(pc, release, p, [])
                if p.state == P.SUCCEEDED:
                    recall_newer(pc.session, pc.now, pc.actor, p, release)
        flow_promotions = [p for p in promotions if not p.rollback]
        self._conclude(pc, release, flow_promotions, finish, flow.on_fail, template)

    def _conclude(
        self,
        pc: PassContext,
        release: ReleaseRow,
        promotions: Sequence[PromotionRow],
        finish: Stage | None,
        on_fail: list[TaskDef],
        template: dict[str, Any],
    ) -> None:
        outcome = conclude(R(release.status), [P(p.state) for p in promotions])
        if outcome == Outcome.SUCCEEDED:
            status, reason = "done", ""
            if finish and finish.key not in release.hooks_done:
                status, reason = pc.drive_tasks(release, None, finish.key, finish.tasks, template)
            if status == "running":
                return
            if status == "failed":
                pc.set_status(release, R.FAILED, f"release onSuccess hook: {reason}")
            else:
                if finish:
                    release.hooks_done = [*release.hooks_done, finish.key]
                pc.set_status(release, R.SUCCEEDED)
        elif outcome == Outcome.FAILED:
            failed = [p for p in promotions if p.state in (P.FAILED, P.REJECTED)]
            pc.set_status(
                release, R.FAILED, "; ".join(f"{p.environment}: {p.message}" for p in failed)
            )
        elif outcome == Outcome.SUPERSEDED:
            pc.set_status(release, R.SUPERSEDED, "a newer release reached an environment first")
        if (
            release.status == R.FAILED
            and on_fail
            and "release.onFail" not in release.hooks_done
            # The release's own onFail comes after its environments' (their rollbacks first).
            and not any(p.fail_hooks_pending for p in promotions)
        ):
            status, _ = pc.drive_tasks(release, None, "release.onFail", on_fail, template)
            if status != "running":
                release.hooks_done = [*release.hooks_done, "release.onFail"]

    # --- loops -----------------------------------------------------------------------

    def run_until_idle(self, max_passes: int = 100_000) -> PassOutcome:
        """Passes until nothing can move: no task in flight and nothing due.

        Waits for timed gates and retries through the clock (a controllable clock jumps).
        Holds the database's lease meanwhile: beside a live engine it raises EngineBusy
        and touches nothing.
        """
        lease.acquire(self.store, self.clock, self.owner, "run")
        try:
            outcome = PassOutcome(False, None, 0)
            for _ in range(max_passes):
                outcome = self.run_pass()
                if outcome.moved:
                    continue
                if outcome.inflight:
                    self.wake.wait()  # a task thread sets it when it finishes
                    continue
                if outcome.next_at is None:
                    self.signer.maybe()
                    return outcome
                self.clock.sleep_until(outcome.next_at, self.wake)
            return outcome
        finally:
            lease.release(self.store, self.owner)

    def serve(self, resync: timedelta = RESYNC, standby: bool = False) -> None:
        """Run until `stop()`; sleep until the next due time or an event, and look again
        at least every `resync` whatever else wakes it.

        Holds the database's lease, renewed by a heartbeat. Beside a live engine it raises
        EngineBusy, or with `standby` waits until that engine's lease expires. Writers in
        other processes wake it through a socket beside the database, bound only once the
        lease is held. A pass that raises is logged and tried again after a back-off.
        """
        if not self._acquire(standby):
            return
        beat = lease.Heartbeat(self.store, self.clock, self.owner, lost=self.stop)
        beat.start()
        listener = wakeup.listen(self.store.engine.url, self.wake)
        failures = 0
        try:
            while not self._stop.is_set():
                try:  # everything here reads the database, which may be away
                    outcome = self.run_pass()
                    probe_at = self.prober.start_due(self.store, self.clock.now(), self.claim.mine)
                    if outcome.moved:
                        self.signer.maybe()
                    failures = 0
                except Exception:
                    failures += 1
                    log.exception("engine pass failed (%d in a row)", failures)
                    self.clock.sleep_until(self.clock.now() + backoff(failures, cap=30), self.wake)
                    continue
                if outcome.moved:
                    continue
                until = min((t for t in (outcome.next_at, probe_at) if t), default=None)
                self.clock.sleep_until(until, self.wake, cap=resync)
        finally:
            if listener is not None:
                listener.close()
            self.signer.sign_quietly()
            beat.stop()
            lease.release(self.store, self.owner)

    def _acquire(self, standby: bool) -> bool:
        """Take the lease; with `standby`, wait for it (False if stopped meanwhile)."""
        while True:
            try:
                lease.acquire(self.store, self.clock, self.owner, "engine")
                return True
            except EngineBusy as busy:
                if not standby:
                    raise
                if not self.standing_by:
                    log.warning("standing by: %s", busy)
                self.standing_by = True
                # Until the holder's lease expires; a dead holder on this host sooner.
                until = min(busy.expires_at, self.clock.now() + lease.TTL / 15)
                self.clock.sleep_until(until, self._standby_wake)
                if self._stop.is_set():
                    return False

    def probe_due(self, wait: float = 30.0) -> list[ProbeStatus]:
        """Run the probes due now, store their answers (`serve` probes by itself)."""
        return self.prober.probe_due(self.store, wait)

    def stop(self) -> None:
        self._stop.set()
        self._standby_wake.set()
        self.wake.set()

    def close(self) -> None:
        self.runner.shutdown()
