"""Columnar health arithmetic: `timeline.evaluate`'s results computed with numpy, for millions
of reports.

`conveyor.health.timeline` is the reference and defines the semantics; this module gives the
same `EntityHealth` results (tests check it against the reference). Only the means differ:

* Reports are columns (`Columns`): times as int64 UTC epoch microseconds, names as codes.
* The input need not be sorted by time: it is stably sorted by (entity, time) here, so the
  input order only breaks ties at one instant, where a node's last report wins as in
  `evaluate`. The store hands reports over in the order received.
* Weekday time is a running clock W(t), time so far minus weekend time so far (weekend days
  bounded by `Weekends`' own midnights), so ``weekday_duration(a, b) == W(b) - W(a)``: a
  binary search per report, not a walk over calendar days. (They could differ only where a
  zone's clock change crosses midnight, as `weekday_duration` sees days by its bounds' dates.)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from numpy.typing import NDArray

from conveyor.health.timeline import (
    EntityHealth,
    HealthState,
    Report,
    Weekends,
    threshold_fraction,
)

I64 = NDArray[np.int64]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_DAY = timedelta(days=1)

# Code 0 is a liveness-only report (state None); the others follow HealthState's order.
STATE_NAMES: tuple[str | None, ...] = (None, *(s.value for s in HealthState))
STATE_CODES: dict[str | None, int] = {name: code for code, name in enumerate(STATE_NAMES)}
_GOOD = (STATE_CODES[HealthState.HEALTHY], STATE_CODES[HealthState.DEFERRING])
_ERROR = STATE_CODES[HealthState.ERROR]


@dataclass(frozen=True)
class Columns:
    """Reports as parallel arrays, in the order received (not necessarily by time).

    `node` codes name a node *of an entity*: one code per (entity, node) pair, so nodes of
    two entities that share a name have different codes and `node_names` may repeat a name.
    `is_version` says whether the report is of the version being judged.
    """

    entity: NDArray[np.int32]
    node: NDArray[np.int32]
    time_us: I64
    live: NDArray[np.bool_]
    state: NDArray[np.int8]
    is_version: NDArray[np.bool_]
    entity_names: Sequence[str]
    node_names: Sequence[str] = field(default=())

    def __post_init__(self) -> None:
        n = len(self.entity)
        lengths = {len(a) for a in (self.node, self.time_us, self.live, self.state)}
        if lengths | {len(self.is_version)} != {n}:
            raise ValueError("report columns differ in length")
        if not n:
            return
        if not 0 <= int(self.entity.min()) <= int(self.entity.max()) < len(self.entity_names):
            raise ValueError("an entity code has no name")
        if int(self.node.min()) < 0:
            raise ValueError("node codes must not be negative")
        owner = np.full(int(self.node.max()) + 1, -1, np.int32)
        owner[self.node] = self.entity
        if np.any(owner[self.node] != self.entity):
            raise ValueError("a node code is used by two entities: code (entity, node) pairs")

    def __len__(self) -> int:
        return len(self.entity)


def us(value: datetime) -> int:
    """UTC epoch microseconds; naive times are UTC, as stores without zones keep them."""
    return (value - EPOCH if value.tzinfo else value.replace(tzinfo=UTC) - EPOCH) // _US


def columns_from_reports(reports: Iterable[Report], version: str) -> Columns:
    """`Report` objects (the reference's input) as columns, in the order given."""
    rows = list(reports)
    entities: dict[str, int] = {}
    nodes: dict[tuple[str, str], int] = {}
    n = len(rows)
    return Columns(
        np.fromiter((entities.setdefault(r.entity, len(entities)) for r in rows), np.int32, n),
        np.fromiter((nodes.setdefault((r.entity, r.node), len(nodes)) for r in rows), np.int32, n),
        np.fromiter((us(r.time) for r in rows), np.int64, n),
        np.fromiter((r.live for r in rows), np.bool_, n),
        np.fromiter((STATE_CODES[r.state] for r in rows), np.int8, n),
        np.fromiter((r.version == version for r in rows), np.bool_, n),
        list(entities),
        [node for _, node in nodes],
    )


def weekend_bounds(weekends: Weekends, lo_us: int, hi_us: int) -> tuple[I64, I64]:
    """UTC ``[start, end)`` of every weekend day around the instants ``[lo, hi]``."""
    if not weekends.days:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    zone = ZoneInfo(weekends.tz)
    # A day either side: a day's bounds in UTC may lie outside its local date's span.
    first = (EPOCH + lo_us * _US).astimezone(zone).date() - _DAY
    last = (EPOCH + hi_us * _US).astimezone(zone).date() + _DAY
    days = [first + k * _DAY for k in range((last - first).days + 1)]
    weekend = [day for day in days if day.weekday() in weekends.days]
    # The reference's own midnights, so DST days are 23/25 hours exactly as there.
    starts = [us(weekends._midnight(day)) for day in weekend]
    ends = [us(weekends._midnight(day + _DAY)) for day in weekend]
    return np.array(starts, np.int64), np.array(ends, np.int64)


def weekday_clock(t: I64, starts: I64, ends: I64) -> I64:
    """W(t): microseconds not on a weekend day before `t` (up to a constant), given the
    weekend days' sorted bounds; ``W(b) - W(a)`` is the weekday time in ``[a, b)``."""
    if not len(starts):
        return t
    lengths = np.maximum(ends - starts, 0)
    before = np.concatenate(([0], np.cumsum(lengths)))  # weekend time before day k
    k = np.searchsorted(starts, t, side="right") - 1  # the last weekend day begun by t
    safe = np.maximum(k, 0)
    inside = np.clip(t - starts[safe], 0, lengths[safe])
    return t - np.where(k >= 0, before[safe] + inside, 0)


def _narrow(codes: NDArray[Any]) -> NDArray[Any]:
    # numpy sorts 16-bit keys stably by radix (linear); wider ones by timsort.
    return codes.astype(np.uint16) if len(codes) and int(codes.max()) < 1 << 16 else codes


def _running(values: NDArray[Any], starts: NDArray[np.intp]) -> NDArray[np.int32]:
    """Running sum of `values` restarting at each group's first row, in one cumsum: each
    group's first step also takes back the previous group's total."""
    steps = values.astype(np.int32)
    totals = np.add.reduceat(steps, starts)
    steps[starts[1:]] -= totals[:-1]
    return np.cumsum(steps, dtype=np.int32)


def _change(flag: NDArray[np.bool_], by_node: NDArray[np.intp], first: NDArray[np.bool_]) -> Any:
    """Per report: its node's new `flag` minus the node's previous one (0 before any)."""
    ordered = flag[by_node].astype(np.int8)
    previous = np.empty_like(ordered)
    previous[1:] = ordered[:-1]
    previous[first] = 0  # also row 0, always a node's first
    change = np.empty_like(ordered)
    change[by_node] = ordered - previous
    return change


@dataclass
class _Sums:
    """Per entity, in sorted order: what its `EntityHealth` is built from."""

    first_row: I64  # the entity's first report, as an index into `cols`
    healthy: I64
    unhealthy: I64
    seen: NDArray[np.bool_]  # whether the version was reported at all
    first_seen: I64  # time of the first report of the version
    first_clock: I64  # W(first_seen)
    now_healthy: NDArray[np.bool_]
    now_unhealthy: NDArray[np.bool_]


def _block(cols: Columns, rows: I64, starts: I64, bounds: tuple[I64, I64], clock_now: int) -> _Sums:
    """The one pass of `evaluate` as whole-array steps, for whole entities: `rows` are their
    reports' indexes in `cols`, sorted by (entity, time), each entity's first at `starts`."""
    # Gathers at random from big columns dominate: only those needed.
    t, node = cols.time_us[rows], cols.node[rows]
    state, live, is_version = cols.state[rows], cols.live[rows], cols.is_version[rows]
    n = len(rows)
    is_start = np.zeros(n, np.bool_)
    is_start[starts] = True
    last = np.append(starts[1:], n) - 1
    group = np.cumsum(is_start, dtype=np.int32) - 1

    # A report's values hold until the entity's next report, the last one's until `now`.
    clock = weekday_clock(t, *bounds)
    span = np.empty_like(clock)
    span[:-1] = clock[1:]
    span[last] = clock_now
    span -= clock

    # Each node's reports in time order: a node's report replaces its previous one.
    by_node = np.argsort(_narrow(node), kind="stable")
    first = np.ones(n, np.bool_)
    sorted_node = node[by_node]
    first[1:] = sorted_node[1:] != sorted_node[:-1]
    is_new = np.empty(n, np.bool_)
    is_new[by_node] = first
    good = live & ((state == _GOOD[0]) | (state == _GOOD[1]))
    nodes = _running(is_new, starts)
    n_live = _running(_change(live, by_node, first), starts)
    n_good = _running(_change(good, by_node, first), starts)
    n_error = _running(_change(live & (state == _ERROR), by_node, first), starts)
    produces = _running(state != 0, starts) > 0
    del by_node, first, sorted_node, good

    # The class of the interval after each report, from the entity's state after it.
    healthy = np.where(produces, n_good == nodes, n_live == nodes)
    unhealthy = produces & (n_error > 0)
    # A new node, or the first real state, retracts the healthy time counted before it.
    produced_before = np.zeros(n, np.bool_)
    produced_before[1:] = produces[:-1]
    produced_before[starts] = False
    retracts = is_new | ((state != 0) & ~produced_before)
    row = np.arange(n, dtype=np.int32)
    last_retraction = np.maximum.reduceat(np.where(retracts, row, 0), starts)
    soaking = _running(is_version, starts) > 0
    credited = healthy & soaking & (row >= last_retraction[group])
    first_version = np.minimum.reduceat(np.where(is_version, row, n), starts)
    seen = first_version < n
    at_first = np.where(seen, first_version, 0)
    return _Sums(
        first_row=rows[starts],
        seen=seen,
        healthy=np.add.reduceat(np.where(credited, span, 0), starts),
        unhealthy=np.add.reduceat(np.where(unhealthy & soaking, span, 0), starts),
        first_seen=t[at_first],
        first_clock=clock[at_first],
        now_healthy=healthy[last],
        now_unhealthy=unhealthy[last],
    )


# Reports evaluated at once: enough to amortise numpy's per-call cost, few enough that the
# temporaries stay small (memory) and near the CPU (time grows linearly with the reports).
BLOCK = 1 << 16


def evaluate_columns(
    cols: Columns,
    now: datetime,
    weekends: Weekends,
    healthy_threshold: float = 0.95,
    unhealthy_threshold: float = 0.05,
    block: int = BLOCK,
) -> dict[str, EntityHealth]:
    """`timeline.evaluate` of the reports in `cols` (any order; see the module docstring).

    Entities come in the order of their first report, as `evaluate` gives them. Whole
    entities are evaluated about `block` reports at a time.
    """
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware: {now!r}")
    now_us = us(now)
    # The store reads only reports up to `now`; skip the copies in that common case.
    # Stable sorts: reports of one instant keep the order received (the last key is primary).
    if cols.time_us.max(initial=now_us) <= now_us:
        entity = cols.entity
        order = np.lexsort((cols.time_us, _narrow(entity)))
    else:
        rows = np.flatnonzero(cols.time_us <= now_us)
        entity = cols.entity[rows]
        order = rows[np.lexsort((cols.time_us[rows], _narrow(entity)))]
    if not len(order):
        return {}
    # Entities come sorted by code, so their reports' counts give where each one starts.
    sizes = np.bincount(entity)
    starts = np.cumsum(np.append(0, sizes[sizes > 0]))[:-1]
    del entity, sizes
    # Cut between entities, about every `block` reports; an entity is never split.
    marks = np.searchsorted(starts, np.arange(0, len(order), max(1, block)))
    cuts = np.unique(starts[marks[marks < len(starts)]]).tolist()
    # From the earliest report, kept or not: a superset of the days needed is harmless.
    bounds = weekend_bounds(weekends, int(cols.time_us.min()), now_us)
    clock_now = int(weekday_clock(np.array([now_us], np.int64), *bounds)[0])
    parts = []
    for lo, hi in zip(cuts, [*cuts[1:], len(order)], strict=True):
        first, end = np.searchsorted(starts, [lo, hi])
        parts.append(_block(cols, order[lo:hi], starts[first:end] - lo, bounds, clock_now))
    merged = _Sums(
        *(np.concatenate([getattr(p, name) for p in parts]) for name in _Sums.__dataclass_fields__)
    )
    return _results(cols, merged, clock_now, healthy_threshold, unhealthy_threshold)


def _ratio_limit(threshold: float) -> tuple[int, int]:
    limit = threshold_fraction(threshold)  # exact, as `timeline.evaluate` compares
    return limit.numerator, limit.denominator


def _results(
    cols: Columns,
    sums: _Sums,
    clock_now: int,
    healthy_threshold: float,
    unhealthy_threshold: float,
) -> dict[str, EntityHealth]:
    h_num, h_den = _ratio_limit(healthy_threshold)
    u_num, u_den = _ratio_limit(unhealthy_threshold)
    firsts = sums.first_row
    # First-report order: by the first report's time, then its place in the input.
    ranked = np.lexsort((firsts, cols.time_us[firsts])).tolist()
    names = [cols.entity_names[code] for code in cols.entity[firsts].tolist()]
    seen_all = sums.seen.tolist()
    first_seen, first_clock = sums.first_seen.tolist(), sums.first_clock.tolist()
    healthy_all, unhealthy_all = sums.healthy.tolist(), sums.unhealthy.tolist()
    now_healthy, now_unhealthy = sums.now_healthy.tolist(), sums.now_unhealthy.tolist()
    result: dict[str, EntityHealth] = {}
    for g in ranked:
        seen = seen_all[g]
        soak = clock_now - first_clock[g] if seen else 0
        healthy, unhealthy = healthy_all[g], unhealthy_all[g]
        if soak > 0:
            h_ratio, u_ratio = healthy / soak, unhealthy / soak
            ok = healthy * h_den >= h_num * soak
            bad = unhealthy * u_den > u_num * soak
        else:
            # No soak time yet (or only weekend): no evidence either way.
            h_ratio, u_ratio, ok, bad = 0.0, 0.0, False, False
        current = "healthy" if now_healthy[g] else "unhealthy" if now_unhealthy[g] else "neither"
        result[names[g]] = EntityHealth(
            entity=names[g],
            soak=soak * _US,
            healthy=healthy * _US,
            unhealthy=unhealthy * _US,
            healthy_ratio=h_ratio,
            unhealthy_ratio=u_ratio,
            satisfies_healthy=ok,
            unhealthy_verdict=bad,
            first_seen=EPOCH + first_seen[g] * _US if seen else None,
            current=current,
        )
    return result
