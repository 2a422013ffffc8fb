"""Health timeline: how long each entity was healthy / unhealthy during a release's soak.

Pure: no I/O and no clock reads (`now` is a parameter), so the same reports always give the
same verdict and the module can be tested exhaustively.

Semantics (beyond the issue text, decided here):

* A report's values hold from its time until the next report of the same node. An entity's
  nodes are all nodes that report on it at or before `now`; a node is not live before its
  first report. So a node first reporting at `t` makes every earlier moment not healthy.
* The soak window of an entity is ``[first_seen, now)`` where `first_seen` is the time of its
  first report of `version`. Node states at `first_seen` come from the latest earlier report
  of each node, whatever its version: the window starts at the new version, but the fleet's
  other nodes keep the state they last reported.
* An entity produces no health when every one of its reports (up to `now`) has state None.
* Reports after `now` are ignored. Reports of one node at the same instant are applied in
  the order given; the last one wins (`sort_reports` fixes a deterministic order).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

from conveyor.model.healthstate import HealthState as HealthState

_ZERO = timedelta(0)
_DAY = timedelta(days=1)


_GOOD = frozenset({HealthState.HEALTHY, HealthState.DEFERRING})


@dataclass(frozen=True)
class Report:
    entity: str
    node: str
    time: datetime
    live: bool
    state: HealthState | None
    version: str

    def __post_init__(self) -> None:
        if self.time.tzinfo is None:
            raise ValueError(f"report time must be timezone-aware: {self.time!r}")
        # Normalise to UTC: aware datetimes sharing a tzinfo subtract and compare by wall
        # clock, which is wrong across DST; UTC everywhere avoids that trap.
        object.__setattr__(self, "time", self.time.astimezone(UTC))


@dataclass(frozen=True)
class EntityHealth:
    entity: str
    soak: timedelta
    healthy: timedelta
    unhealthy: timedelta
    healthy_ratio: float
    unhealthy_ratio: float
    satisfies_healthy: bool
    unhealthy_verdict: bool
    first_seen: datetime | None
    # How the entity is at `now` (its latest moment): "healthy", "unhealthy" or "neither".
    # With the ratios it tells when a verdict can next change without a new report.
    current: str = "neither"


@dataclass(frozen=True)
class Weekends:
    """Calendar days (Monday=0 .. Sunday=6) in `tz` whose time does not count."""

    tz: str = "UTC"
    days: frozenset[int] = field(default_factory=lambda: frozenset({5, 6}))

    def __post_init__(self) -> None:
        ZoneInfo(self.tz)  # fail fast on an unknown zone rather than at first evaluation
        if not self.days <= frozenset(range(7)):
            raise ValueError(f"weekend days must be in 0..6: {sorted(self.days)}")

    def _midnight(self, day: date) -> datetime:
        # A weekend day is the whole local calendar day, so its length follows DST (23/25h).
        return datetime.combine(day, time.min, tzinfo=ZoneInfo(self.tz)).astimezone(UTC)

    def weekday_duration(self, start: datetime, end: datetime) -> timedelta:
        """Time in ``[start, end)`` not on a weekend day; O(calendar days spanned)."""
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        if end <= start:
            return _ZERO
        total = end - start
        if not self.days:
            return total
        zone = ZoneInfo(self.tz)
        day, last = start.astimezone(zone).date(), end.astimezone(zone).date()
        while day <= last:
            if day.weekday() in self.days:
                lo = max(start, self._midnight(day))
                hi = min(end, self._midnight(day + _DAY))
                if hi > lo:
                    total -= hi - lo
            day += _DAY
        return total

    def after(self, start: datetime, span: timedelta) -> datetime:
        """The earliest `t` with ``weekday_duration(start, t) >= span``."""
        start = start.astimezone(UTC)
        if span <= _ZERO:
            return start
        if len(self.days) == 7:
            raise ValueError("every day is a weekend day: no time ever counts")
        zone = ZoneInfo(self.tz)
        day, left, cursor = start.astimezone(zone).date(), span, start
        for _ in range(span.days * 7 // max(1, 7 - len(self.days)) + 16):
            end = self._midnight(day + _DAY)
            if day.weekday() not in self.days and end > cursor:
                if cursor + left <= end:
                    return cursor + left
                left -= end - cursor
            cursor = max(cursor, end)
            day += _DAY
        raise AssertionError("unreachable: the loop covers every day the span can need")


@dataclass
class _Node:
    live: bool
    state: HealthState | None


@dataclass
class _Entity:
    """Running state of one entity: its nodes' current values plus counters kept in step
    with them, so classifying a moment is O(1) however many nodes there are."""

    nodes: dict[str, _Node] = field(default_factory=dict)
    live: int = 0
    live_good: int = 0
    live_error: int = 0
    produces_health: bool = False
    first_seen: datetime | None = None
    cursor: datetime | None = None
    healthy: timedelta = _ZERO
    unhealthy: timedelta = _ZERO

    def _count(self, node: _Node, sign: int) -> None:
        if node.live:
            self.live += sign
            self.live_good += sign if node.state in _GOOD else 0
            self.live_error += sign if node.state is HealthState.ERROR else 0

    def accrue(self, until: datetime, weekends: Weekends) -> None:
        # The classification is constant between two reports of this entity, so the
        # interval since the previous one is attributed as a whole.
        if self.first_seen is not None and self.cursor is not None and until > self.cursor:
            span = weekends.weekday_duration(self.cursor, until)
            if self.produces_health:
                if self.live_good == len(self.nodes):
                    self.healthy += span
                elif self.live_error > 0:
                    self.unhealthy += span
            elif self.live == len(self.nodes):
                self.healthy += span
        self.cursor = until

    def current(self) -> str:
        if self.produces_health:
            if self.live_good == len(self.nodes):
                return "healthy"
            return "unhealthy" if self.live_error > 0 else "neither"
        return "healthy" if self.live == len(self.nodes) else "neither"

    def apply(self, report: Report) -> None:
        if report.state is not None and not self.produces_health:
            # Until now every report said None, so under health rules no earlier moment was
            # healthy (None is not HEALTHY/DEFERRING) nor unhealthy (no ERROR): retract.
            self.produces_health = True
            self.healthy = _ZERO
        old = self.nodes.get(report.node)
        if old is None:
            # The node existed all along but was not live before its first report, so no
            # earlier moment had all nodes live: retract the healthy time counted so far.
            self.healthy = _ZERO
        else:
            self._count(old, -1)
        new = _Node(report.live, report.state)
        self.nodes[report.node] = new
        self._count(new, +1)


def threshold_fraction(threshold: float) -> Fraction:
    """The threshold as written (0.95 is 19/20), for exact comparisons: a ratio exactly at
    the boundary is not tipped either way by binary floating point."""
    return Fraction(repr(threshold))


def _exceeds(part: timedelta, whole: timedelta, threshold: float, *, strict: bool) -> bool:
    ratio = Fraction(part // timedelta(microseconds=1), whole // timedelta(microseconds=1))
    limit = threshold_fraction(threshold)
    return ratio > limit if strict else ratio >= limit


def _sort_key(r: Report) -> tuple[datetime, str, str, str, bool, str]:
    return (r.time, r.entity, r.node, r.version, r.live, r.state or "")


def sort_reports(reports: Iterable[Report]) -> list[Report]:
    """Order reports by their own time (ties broken deterministically) and drop exact
    duplicates, for callers whose reports are not already sorted (e.g. not from the store)."""
    return sorted(set(reports), key=_sort_key)


def evaluate(
    reports: Iterable[Report],
    version: str,
    now: datetime,
    weekends: Weekends,
    healthy_threshold: float = 0.95,
    unhealthy_threshold: float = 0.05,
) -> dict[str, EntityHealth]:
    """Health of every entity reported on, in one pass.

    `reports` MUST be sorted by time (the store reads them ``ORDER BY time``; otherwise use
    `sort_reports`); a report earlier than its predecessor raises ValueError. Exact
    duplicates are harmless. Memory is per entity its nodes' current state, not the reports.
    """
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware: {now!r}")
    now = now.astimezone(UTC)
    entities: dict[str, _Entity] = {}
    previous: datetime | None = None
    for report in reports:
        if previous is not None and report.time < previous:
            raise ValueError(f"reports not sorted by time at {report!r}; use sort_reports")
        previous = report.time
        if report.time > now:
            continue
        ent = entities.setdefault(report.entity, _Entity())
        ent.accrue(report.time, weekends)
        if ent.first_seen is None and report.version == version:
            ent.first_seen = report.time
        ent.apply(report)

    result: dict[str, EntityHealth] = {}
    for name, ent in entities.items():
        ent.accrue(now, weekends)
        soak = _ZERO if ent.first_seen is None else weekends.weekday_duration(ent.first_seen, now)
        if soak > _ZERO:
            h_ratio, u_ratio = ent.healthy / soak, ent.unhealthy / soak
            ok = _exceeds(ent.healthy, soak, healthy_threshold, strict=False)
            bad = _exceeds(ent.unhealthy, soak, unhealthy_threshold, strict=True)
        else:
            # No soak time yet (or only weekend): no evidence either way.
            h_ratio, u_ratio, ok, bad = 0.0, 0.0, False, False
        result[name] = EntityHealth(
            entity=name,
            soak=soak,
            healthy=ent.healthy,
            unhealthy=ent.unhealthy,
            healthy_ratio=h_ratio,
            unhealthy_ratio=u_ratio,
            satisfies_healthy=ok,
            unhealthy_verdict=bad,
            first_seen=ent.first_seen,
            current=ent.current(),
        )
    return result
