"""`conveyor simulate`: replay a release and a recorded health history with a controllable
clock on a scratch copy of the store; say when each environment would be promoted, held or
recalled, and why. The real store is only read (SQLite's backup API copies it consistently
while an engine writes). The copy runs the real gates and engine passes, so the forecast
follows a real run's rules; each action succeeds at once and does nothing outside.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from conveyor.clock import Clock, ManualClock, SystemClock, utc
from conveyor.engine import due, health, releases, resources
from conveyor.engine.reconciler import Engine, PassOutcome
from conveyor.engine.simulated import simulated_registry
from conveyor.engine.view import NodeView, build
from conveyor.errors import ConveyorError, DefinitionError, NotFound, Problem
from conveyor.model.definitions import ProductSpec
from conveyor.model.duration import format_duration
from conveyor.model.states import PromotionState as P
from conveyor.model.states import ReleaseStatus as R
from conveyor.store import copy
from conveyor.store.auditkeys import AuditKeys
from conveyor.store.db import Store, open_store
from conveyor.store.tables import HealthReportRow, PromotionRow, ReleaseRow
from conveyor.store.url import database_url

DEFAULT_SPAN = timedelta(days=14)
MAX_SPAN = timedelta(days=31)  # the longest soak a gate may ask for
MAX_PASSES = 10_000  # passes at one simulated instant before giving up (a loop in a plugin)
TASK_WAIT_S = 30.0  # simulated actions return at once; this only guards a stuck thread
MAX_PROBLEMS = 20  # a wholly wrong file says so in a screenful, not in thousands of lines


@dataclass(frozen=True)
class HistoryReport:
    time: datetime
    environment: str
    entity: str
    node: str
    live: bool
    state: str | None
    version: str
    file: str = "<history>"  # where it was read, for error messages
    line: int | None = None


@dataclass(frozen=True)
class EnvironmentForecast:
    environment: str
    node: str
    # promoted, held, pending, recalled, skipped, failed, superseded, terminated, rejected
    outcome: str
    at: datetime | None  # when it got there (held: since when)
    reason: str
    started_at: datetime | None  # began deploying
    deployed_at: datetime | None
    held_reason: str  # the last thing it waited for, even if it moved on since
    rolled_back_to: str | None = None  # the release a recall put back there
    rolled_back_at: datetime | None = None  # None while that rollback has not finished


@dataclass(frozen=True)
class Forecast:
    product: str
    version: str
    flow: str
    start: datetime
    end: datetime  # how far the simulated clock went
    span: timedelta
    stopped: str  # why the replay ended
    status: str
    message: str
    finished_at: datetime | None
    reports: int  # history reports replayed (at or before `end`)
    environments: list[EnvironmentForecast]


def scratch_copy(db: str | None, directory: Path) -> Path:
    """Copy the store behind `db` (a path or URL, as `--db`) into a SQLite file in
    `directory`."""
    url = make_url(database_url(db))
    target = directory / "simulation.db"
    if url.drivername.startswith("postgresql"):
        server = open_store(url.render_as_string(hide_password=False))
        try:
            copy.to_sqlite(server, target)
        finally:
            server.close()
        return target
    if not url.drivername.startswith("sqlite") or url.database in (None, "", ":memory:"):
        raise ConveyorError(
            f"simulate copies the store, and {url.render_as_string()} is neither a SQLite "
            "file nor a PostgreSQL database: point --db at one"
        )
    source = Path(str(url.database)).expanduser().resolve()
    if not source.is_file():
        raise NotFound(f"no database at {source}: give --db, or apply definitions there first")
    try:
        # Read-only, so that nothing the copy does can change the real store.
        with (
            closing(sqlite3.connect(f"{source.as_uri()}?mode=ro", uri=True)) as src,
            closing(sqlite3.connect(target)) as dst,
        ):
            src.backup(dst)
    except sqlite3.Error as exc:
        raise ConveyorError(f"cannot copy {source}: {exc}") from None
    return target


def simulate(
    db: str | None,
    ref: str,
    history: Sequence[HistoryReport] = (),
    *,
    flow: str | None = None,
    start: datetime | None = None,
    span: timedelta = DEFAULT_SPAN,
    labels: dict[str, str] | None = None,
    actor: str = "simulate",
    system_clock: Clock | None = None,
) -> Forecast:
    """Replay `ref` on a copy of the store behind `db` from `start` (default: the first
    report, else now) for `span`, with `history`'s reports as the clock reaches them."""
    if not timedelta(0) <= span <= MAX_SPAN:
        raise _option(f"{format_duration(span)} is over {format_duration(MAX_SPAN)}", "--for")
    reports = sorted(history, key=lambda r: r.time)  # stable: ties keep the file's order
    if start is None:
        start = reports[0].time if reports else (system_clock or SystemClock()).now()
    start = utc(start)
    with tempfile.TemporaryDirectory(prefix="conveyor-simulate-") as tmp:
        # Keys of its own: the copy's events are thrown away, never signed beside the store's.
        store = open_store(f"sqlite:///{scratch_copy(db, Path(tmp))}", audit_keys=AuditKeys(None))
        clock = ManualClock(start)
        # A few workers: simulated actions return at once. Probes never start: only
        # `serve` and `probe_due` run them, and the replay calls neither.
        engine = Engine(store, clock, simulated_registry(), Path(tmp), max_workers=4)
        try:
            with store.session() as s:
                _record(s, reports)  # before anything runs: a bad line stops it all
                first_new = s.scalar(select(func.max(PromotionRow.id))) or 0
                release_id = _prepare(s, ref, flow, labels or {}, actor, start)
            replay = _Replay(store, engine, clock, start, start + span, release_id, first_new)
            return replay.run(reports)
        finally:
            engine.close()
            store.close()


@dataclass
class _Seen:
    state: str = ""
    held_since: datetime | None = None
    held_reason: str = ""


@dataclass
class _Replay:
    store: Store
    engine: Engine
    clock: ManualClock
    start: datetime
    end: datetime
    release_id: int
    first_new: int  # promotions with a greater id were made during the replay
    seen: dict[int, _Seen] = field(default_factory=dict)

    def run(self, reports: list[HistoryReport]) -> Forecast:
        changes = iter(self._changes())
        change = next(changes, None)
        stopped = "step limit"
        for _ in range(MAX_PASSES + len(reports)):
            outcome = self._settle()
            if self._observe():
                stopped = "release finished"
                break
            now = self.clock.now()
            while change is not None and change <= now:
                change = next(changes, None)
            times = [t for t in (change, outcome.next_at) if t is not None]
            if not times:
                stopped = "nothing left to wait for"
                break
            # An engine that asked for now and did not move must not spin on one instant.
            when = max(min(times), now + timedelta(microseconds=1))
            if when > self.end:
                self.clock.set(self.end)
                stopped = "time limit"
                break
            self.clock.set(when)
            if when == change:  # the report "arrives": who waits on health looks again
                with self.store.session() as s:
                    due.health_reported(s, when)
        return self._forecast(stopped, sum(1 for r in reports if r.time <= self.clock.now()))

    def _settle(self) -> PassOutcome:
        """Passes at this instant until nothing moves and no task is in flight."""
        for _ in range(MAX_PASSES):
            outcome = self.engine.run_pass()
            if outcome.moved:
                continue
            if outcome.inflight:
                self.engine.wake.wait(TASK_WAIT_S)  # a task thread sets it as it finishes
                continue
            return outcome
        raise ConveyorError(f"the simulation did not settle at {self.clock.now():%Y-%m-%d %H:%M}")

    def _changes(self) -> list[datetime]:
        """Every time in (start, end] when a report arrives. A real engine is woken by each
        report and looks again, even at one that repeats the last: a gate that passes while
        another waits does not say when it would turn, so the replay must look as often."""
        with self.store.session() as s:
            times = s.scalars(
                select(HealthReportRow.time)
                .where(HealthReportRow.time > self.start, HealthReportRow.time <= self.end)
                .distinct()
                .order_by(HealthReportRow.time)
            )
            return [utc(t) for t in times]

    def _observe(self) -> bool:
        """Note when each promotion began to be held and why; True once the release has
        ended and what its end set off (rollbacks) has too."""
        now = self.clock.now()
        with self.store.session() as s:
            release = s.get(ReleaseRow, self.release_id)
            assert release is not None
            promotions = [*_own(s, release), *(p for p, _ in self._rollbacks(s, release))]
            for p in promotions:
                seen = self.seen.setdefault(p.id, _Seen())
                if p.state != seen.state:
                    seen.state, seen.held_since = p.state, None  # held again is a new hold
                if P(p.state).active and p.wait_reason:
                    seen.held_since = seen.held_since or now
                    seen.held_reason = p.wait_reason
            ended = release.status not in (R.CREATED, R.RUNNING)
            return ended and not any(P(p.state).active for p in promotions)

    def _forecast(self, stopped: str, fed: int) -> Forecast:
        now = self.clock.now()
        with self.store.session() as s:
            release = s.get(ReleaseRow, self.release_id)
            assert release is not None
            view = build(s, release, now)  # its nodes in the flow's order, times in UTC
            own = {(p.environment, p.node): p for p in _own(s, release)}
            back = {p.environment: (p, v) for p, v in self._rollbacks(s, release)}
            envs = []
            for node in view.nodes:
                p = own[node.environment, node.node]
                forecast = _outcome(p, node, self.seen.get(p.id, _Seen()))
                if p.environment in back:
                    rollback, version = back[p.environment]
                    done = rollback.finished_at if rollback.state == P.SUCCEEDED else None
                    at = utc(done) if done else None
                    forecast = replace(forecast, rolled_back_to=version, rolled_back_at=at)
                envs.append(forecast)
            return Forecast(
                view.product,
                view.version,
                view.flow or "",
                self.start,
                now,
                self.end - self.start,
                stopped,
                view.status,
                view.message,
                view.finished_at,
                fed,
                envs,
            )

    def _rollbacks(self, session: Session, release: ReleaseRow) -> list[tuple[PromotionRow, str]]:
        """The rollbacks the release's recall started during the replay (promotions of the
        earlier releases it replaced, rolling back from its version), with their versions."""
        started = session.execute(
            select(PromotionRow, ReleaseRow.version)
            .join(ReleaseRow, PromotionRow.release_id == ReleaseRow.id)
            .where(PromotionRow.id > self.first_new, ReleaseRow.product == release.product)
            .order_by(PromotionRow.id)
        ).all()
        return [
            (p, version)
            for p, version in started
            if p.rollback and (p.policy.get("rollback") or {}).get("from") == release.version
        ]


def _own(session: Session, release: ReleaseRow) -> list[PromotionRow]:
    return list(session.scalars(select(PromotionRow).where(PromotionRow.release_id == release.id)))


def _outcome(p: PromotionRow, node: NodeView, seen: _Seen) -> EnvironmentForecast:
    state = P(p.state)
    at, outcome, reason = node.finished_at, str(state), p.message
    if state == P.RECALLED:
        reason = reason.removeprefix("recalled: ")
    if state == P.SUCCEEDED:
        outcome, reason = "promoted", ""
    elif state.active and p.wait_reason:
        outcome, at, reason = "held", seen.held_since or node.since, p.wait_reason
    elif state == P.PENDING or state.active:  # pending: "after qa"; deploying: its state
        outcome, at, reason = str(state), node.since, node.detail
    started, deployed = node.started_at, node.deployed_at
    return EnvironmentForecast(
        p.environment, p.node, outcome, at, reason, started, deployed, seen.held_reason
    )


def _record(session: Session, reports: list[HistoryReport]) -> None:
    """Store every report up front, each received at its own time. Gates read only reports
    at or before the simulated now, so this is the same as feeding each one when the clock
    reaches it, with the same checks as `conveyor health report`."""
    problems: list[Problem] = []
    environments = {}  # read once: reading a definition costs more than recording a report
    for r in reports:
        try:
            if r.environment not in environments:
                environments[r.environment] = health.current_environment(session, r.environment)
            health.record(
                session,
                *(r.environment, r.entity, r.node, r.time, r.live, r.state, r.version, r.time),
                environment_spec=environments[r.environment],
                replay=True,
            )
        except DefinitionError as exc:
            problems += [replace(p, file=r.file, line=r.line) for p in exc.problems]
        except NotFound as exc:
            problems.append(Problem(str(exc), r.file, r.line, "environment"))
        if len(problems) >= MAX_PROBLEMS:
            problems.append(Problem("more problems not shown: fix these first", r.file))
            break
    if problems:
        raise DefinitionError(problems)


def _prepare(
    session: Session, ref: str, flow: str | None, labels: dict[str, str], actor: str, now: datetime
) -> int:
    """The release in the scratch store, triggered: created if it does not exist (a "what
    if it started now"), triggered if it was not, else as it stands."""
    product, version = releases.parse_ref(ref)
    try:
        release = releases.find(session, ref)
    except NotFound:
        spec = resources.get_current(session, "Product", product).spec
        assert isinstance(spec, ProductSpec)
        # Creation checks every artifact is pinned; simulated actions never read them.
        zeros = {"image": f"@sha256:{'0' * 64}", "git": "0" * 40}
        pins = {
            a.name: f"{a.repository or a.name}{zeros['image']}"
            if a.type == "image"
            else zeros.get(a.type, version)
            for a in spec.artifacts
        }
        release = releases.create(session, product, version, pins, labels, actor, now)
    else:
        if labels:
            releases.set_labels(session, release, labels, [], actor, now)
    if release.status == R.CREATED:
        releases.trigger(session, flow or _flow_of(session, product), release, actor, now)
    elif flow is not None and release.flow != flow:
        raise _option(f"{ref} is on flow {release.flow}: leave --flow out to simulate it", "--flow")
    return release.id


def _flow_of(session: Session, product: str) -> str:
    """The flow to trigger on when --flow is left out: the product's only one."""
    flows = resources.list_current(session, "PromotionFlow")
    names = sorted(c.name for c in flows if c.spec.product == product)
    if len(names) == 1:
        return names[0]
    if not names:
        raise NotFound(f"no flow promotes {product}: apply one first (see `conveyor get flows`)")
    raise _option(f"{product} has several flows ({', '.join(names)}): choose one", "--flow")


def _option(message: str, option: str) -> DefinitionError:
    return DefinitionError(Problem(message, "command line", None, option))
