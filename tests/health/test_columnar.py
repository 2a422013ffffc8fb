"""Columnar health arithmetic: the same results as the reference `timeline.evaluate`."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from conveyor.clock import ManualClock
from conveyor.engine import health
from conveyor.engine.service import Conveyor
from conveyor.health import (
    EntityHealth,
    HealthState,
    Report,
    Weekends,
    columns_from_reports,
    evaluate,
    evaluate_columns,
)
from conveyor.health.columnar import Columns, us, weekday_clock, weekend_bounds
from conveyor.store.tables import HEALTH_STATE_CODES, HealthNodeRow, HealthReportRow
from tests.conftest import BASE as DEFINITIONS
from tests.conftest import apply_yaml
from tests.health.reports import MIN, D, E, H, W, at, rep

HOUR = timedelta(hours=1)


def by_time(reports: list[Report]) -> list[Report]:
    """What the reference needs: time order, ties in the given order (sorted() is stable)."""
    return sorted(reports, key=lambda r: r.time)


def both(
    reports: list[Report], now: datetime, weekends: Weekends = Weekends()
) -> dict[str, EntityHealth]:
    """The columnar result, after checking it equals the reference's, entity order included."""
    expected = evaluate(by_time(reports), "v2", now, weekends)
    got = evaluate_columns(columns_from_reports(reports, "v2"), now, weekends)
    assert got == expected
    assert list(got) == list(expected)
    return got


# --- against the reference, at random ----------------------------------------------------

# Fridays before a DST change: New York, Berlin and the Azores (whose clocks change at
# midnight), Santiago (its DST ends at Saturday 24:00), each window four days long.
BASES = [
    datetime(2026, 3, 6, 12, tzinfo=UTC),
    datetime(2026, 3, 27, 12, tzinfo=UTC),
    datetime(2026, 4, 3, 12, tzinfo=UTC),
    datetime(2026, 9, 4, 12, tzinfo=UTC),
    datetime(2026, 10, 23, 12, tzinfo=UTC),
    datetime(2026, 10, 30, 12, tzinfo=UTC),
]
SPAN_US = 4 * 86_400 * 10**6
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "America/Santiago", "Atlantic/Azores"]
THRESHOLDS = [0.95, 0.05, 0.5, 0.0, 1.0, 1 / 3]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Report], datetime, Weekends, float, float, int]:
    base = draw(st.sampled_from(BASES))
    # Few instants, so that reports often share one (ties), and `now` often equals one.
    instants = draw(st.lists(st.integers(0, SPAN_US), min_size=1, max_size=8))
    report = st.builds(
        Report,
        entity=st.sampled_from(["e1", "e2", "e3"]),
        node=st.sampled_from(["n1", "n2", "n3"]),
        time=st.sampled_from(instants).map(lambda u: base + timedelta(microseconds=u)),
        live=st.booleans(),
        # None twice as likely: long None prefixes exercise the no-health -> health switch.
        state=st.sampled_from([None, None, H, D, W, E, HealthState.REPAIRING]),
        version=st.sampled_from(["v1", "v2"]),
    )
    reports = draw(st.lists(report, max_size=40))
    if draw(st.booleans()):
        # An entity that never produces health.
        reports = [
            Report(r.entity, r.node, r.time, r.live, None, r.version) if r.entity == "e2" else r
            for r in reports
        ]
    now_us = draw(st.one_of(st.sampled_from(instants), st.integers(0, SPAN_US)))
    weekends = Weekends(draw(st.sampled_from(ZONES)), draw(st.frozensets(st.integers(0, 6))))
    healthy, unhealthy = draw(st.sampled_from(THRESHOLDS)), draw(st.sampled_from(THRESHOLDS))
    # A small block evaluates entities in several parts, as millions of reports do.
    block = draw(st.sampled_from([1, 3, 1 << 20]))
    now = base + timedelta(microseconds=now_us)
    return reports, now, weekends, healthy, unhealthy, block


@settings(max_examples=200, deadline=None)
@example(
    scenario=(
        [rep("n1", at(17, 10), None, entity="e1"), rep("n1", at(17, 11), H, entity="e1")],
        at(17, 12),
        Weekends(),
        0.95,
        0.05,
        1,
    )
)
@given(scenario=scenarios())
def test_matches_the_reference(
    scenario: tuple[list[Report], datetime, Weekends, float, float, int],
) -> None:
    reports, now, weekends, healthy, unhealthy, block = scenario
    # The columnar path takes reports in any order; input order breaks ties only.
    expected = evaluate(by_time(reports), "v2", now, weekends, healthy, unhealthy)
    cols = columns_from_reports(reports, "v2")
    got = evaluate_columns(cols, now, weekends, healthy, unhealthy, block=block)
    assert got == expected
    assert list(got) == list(expected)


@settings(max_examples=200, deadline=None)
@given(
    a=st.integers(0, SPAN_US),
    b=st.integers(0, SPAN_US),
    base=st.sampled_from(BASES),
    tz=st.sampled_from(ZONES),
    days=st.frozensets(st.integers(0, 6)),
)
def test_weekday_clock_differences_are_weekday_durations(
    a: int, b: int, base: datetime, tz: str, days: frozenset[int]
) -> None:
    weekends = Weekends(tz, days)
    lo, hi = us(base) + min(a, b), us(base) + max(a, b)
    clock = weekday_clock(np.array([lo, hi], np.int64), *weekend_bounds(weekends, lo, hi))
    expected = weekends.weekday_duration(
        base + timedelta(microseconds=min(a, b)), base + timedelta(microseconds=max(a, b))
    )
    assert timedelta(microseconds=int(clock[1] - clock[0])) == expected


# --- hand-computed -----------------------------------------------------------------------

TUE10, TUE12 = at(17, 10), at(17, 12)


def test_thresholds_are_compared_exactly() -> None:
    # 114 of 120 minutes healthy is 0.95 exactly (>= passes); 6 unhealthy is 0.05 (> fails).
    base = [rep("a", TUE10), rep("b", TUE10), rep("b", at(17, 11), E)]
    h = both([*base, rep("b", at(17, 11, 6))], TUE12)["e"]
    assert (h.soak, h.healthy, h.unhealthy) == (120 * MIN, 114 * MIN, 6 * MIN)
    assert h.satisfies_healthy and not h.unhealthy_verdict
    assert h.healthy_ratio == 0.95 and h.first_seen == TUE10 and h.current == "healthy"
    h = both([*base, rep("b", at(17, 11, 7))], TUE12)["e"]
    assert not h.satisfies_healthy and h.unhealthy_verdict


def test_last_report_of_one_instant_wins() -> None:
    h = both([rep("a", TUE10), rep("a", TUE10, E)], TUE12)["e"]
    assert (h.healthy, h.unhealthy, h.current) == (0 * MIN, 120 * MIN, "unhealthy")
    h = both([rep("a", TUE10, E), rep("a", TUE10)], TUE12)["e"]
    assert (h.healthy, h.unhealthy, h.current) == (120 * MIN, 0 * MIN, "healthy")


def test_retractions() -> None:
    # A node first reporting at 10:30 was not live before: 90 of 120 minutes healthy.
    h = both([rep("a", TUE10), rep("b", at(17, 10, 30))], TUE12)["e"]
    assert (h.soak, h.healthy) == (120 * MIN, 90 * MIN)
    # Liveness-only until 11:00, then a real state: the None stretch was never healthy.
    reports = [rep("a", TUE10, None), rep("b", TUE10, None), rep("a", at(17, 11))]
    h = both([*reports, rep("b", at(17, 11, 30))], TUE12)["e"]
    assert (h.healthy, h.unhealthy) == (30 * MIN, 0 * MIN)
    # Without a real state the entity is healthy while all nodes are live.
    reports = [rep("a", TUE10, None), rep("b", TUE10, None), rep("b", at(17, 11), None, live=False)]
    h = both(reports, TUE12)["e"]
    assert (h.healthy, h.current) == (60 * MIN, "neither")


def test_weekend_across_the_end_of_dst_in_berlin() -> None:
    # Friday 12:00 UTC to Monday 12:00 UTC; Berlin's weekend is Friday 22:00 UTC (CEST) to
    # Sunday 23:00 UTC (CET): 49 hours, so 23 of the 72 hours count.
    friday, monday = datetime(2026, 10, 23, 12, tzinfo=UTC), datetime(2026, 10, 26, 12, tzinfo=UTC)
    reports = [rep("a", friday), rep("a", datetime(2026, 10, 25, 12, tzinfo=UTC), E)]
    h = both(reports, monday, Weekends("Europe/Berlin"))["e"]
    # The error from Sunday 12:00 UTC counts from Berlin's Monday (Sunday 23:00 UTC) on.
    assert (h.soak, h.healthy, h.unhealthy) == (23 * HOUR, 10 * HOUR, 13 * HOUR)


def test_reports_after_now_and_other_versions() -> None:
    reports = [rep("a", TUE10, version="v1"), rep("a", at(17, 13))]
    reports += [rep("a", at(17, 13), entity="late"), rep("a", at(17, 11), E, entity="f")]
    got = both(reports, TUE12)
    assert list(got) == ["e", "f"]  # "late" reported only after now
    e = got["e"]
    assert e.first_seen is None and e.soak == timedelta(0) and e.current == "healthy"
    assert not e.satisfies_healthy and not e.unhealthy_verdict
    assert got["f"].unhealthy == 60 * MIN and got["f"].first_seen == at(17, 11)


def test_unsorted_input_and_entity_order() -> None:
    reports = [rep("a", TUE10, entity="x"), rep("a", TUE10, entity="y"), rep("b", at(17, 9))]
    shuffled = list(reversed(reports))
    got = evaluate_columns(columns_from_reports(shuffled, "v2"), TUE12, Weekends())
    # By first report: e (9:00), then y before x at 10:00, as they come in `shuffled`.
    assert list(got) == ["e", "y", "x"]
    assert got == evaluate(by_time(shuffled), "v2", TUE12, Weekends())


def test_nothing_to_evaluate() -> None:
    assert evaluate_columns(columns_from_reports([], "v2"), TUE12, Weekends()) == {}
    cols = columns_from_reports([rep("a", at(17, 13))], "v2")
    assert evaluate_columns(cols, TUE12, Weekends()) == {}


def test_invalid_input_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate_columns(columns_from_reports([], "v2"), datetime(2026, 11, 17), Weekends())  # noqa: DTZ001

    def cols(entity: list[int], node: list[int], names: list[str], times: int = 0) -> Columns:
        n = len(entity)
        live, state = np.ones(n, np.bool_), np.ones(n, np.int8)
        codes = np.array(entity, np.int32), np.array(node, np.int32)
        return Columns(*codes, np.zeros(times or n, np.int64), live, state, live, names)

    with pytest.raises(ValueError, match="differ in length"):
        cols([0], [0], ["e"], times=2)
    with pytest.raises(ValueError, match="no name"):
        cols([0, 1], [0, 1], ["e"])
    # Node code 0 in two entities: codes must name (entity, node) pairs.
    with pytest.raises(ValueError, match="two entities"):
        cols([0, 1], [0, 0], ["e", "f"])
    assert len(cols([0, 1], [0, 1], ["e", "f"])) == 2


def test_report_columns_code_nodes_per_entity() -> None:
    reports = [
        rep("a", at(17, 10), entity="e"),
        rep("a", at(17, 10), live=False, state=None, version="v1", entity="f"),
        rep("a", at(17, 11), state=E, version="v1", entity="e"),
    ]
    cols = columns_from_reports(reports, "v2")
    assert list(cols.entity_names) == ["e", "f"]
    assert cols.entity.tolist() == [0, 1, 0]
    # Node "a" of e and node "a" of f are two nodes.
    assert cols.node[0] == cols.node[2] != cols.node[1]
    assert [cols.node_names[c] for c in cols.node.tolist()] == ["a", "a", "a"]
    assert cols.state.tolist() == [1, 0, 7] and cols.live.tolist() == [True, False, True]
    assert cols.is_version.tolist() == [True, False, False]
    assert cols.time_us.tolist() == [us(at(17, 10)), us(at(17, 10)), us(at(17, 11))]


# --- through the store -------------------------------------------------------------------


def test_show_matches_the_reference_over_stored_reports(cv: Conveyor, clock: ManualClock) -> None:
    apply_yaml(cv, DEFINITIONS)
    t0 = clock.now()
    rng = random.Random(5)
    states = [None, "HEALTHY", "HEALTHY", "HEALTHY", "HEALTHY", "DEFERRING", "ERROR"]
    clock.set(t0 + 40 * 17 * MIN)  # reports are not dated ahead of the clock; judged at `now`
    for _ in range(80):
        # Out of order, some at a shared instant, some after `now`; some of the old version.
        at_ = t0 + rng.choice([0, 1, 2, 3, 5, 8, 13, 40]) * 17 * MIN
        cv.report_health(
            "prod",
            rng.choice(["cluster-a", "cluster-b", "cluster-c"]),
            rng.choice(["n1", "n2"]),
            rng.random() < 0.95,
            rng.choice(states),
            rng.choice(["1.0.0", "0.9.0"]),
            at=at_,
        )
    now = t0 + 4 * HOUR
    with cv.store.session() as s:
        rows = s.scalars(
            select(HealthReportRow).order_by(HealthReportRow.time, HealthReportRow.id)
        ).all()
        reports = [
            Report(
                r.entity,
                r.node,
                r.time,
                r.live,
                None if r.state is None else HealthState(r.state),
                r.version,
            )
            for r in rows
        ]
    expected = evaluate(reports, "1.0.0", now, Weekends())
    got = cv.health("prod", "shop", "1.0.0", at=now)
    assert got == expected and list(got) == list(expected)
    assert any(h.healthy for h in got.values()) and any(h.unhealthy for h in got.values())
    assert cv.health("prod", "shop", "1.0.0", entity="cluster-b", at=now) == {
        "cluster-b": expected["cluster-b"]
    }


def test_a_weekend_day_ending_dst_at_midnight() -> None:
    # Santiago's DST ends at Saturday 24:00 (back to 23:00): that Saturday has 25 hours,
    # from 03:00 UTC (-03) to Sunday 04:00 UTC (-04).
    weekends = Weekends("America/Santiago", frozenset({5}))
    saturday = datetime(2026, 4, 4, 3, tzinfo=UTC)
    starts, ends = weekend_bounds(weekends, us(saturday), us(saturday))
    assert (us(saturday), us(saturday + 25 * HOUR)) in zip(
        starts.tolist(), ends.tolist(), strict=True
    )
    # A report Friday 12:00 UTC, now Monday 12:00 UTC: 72 hours less Saturday's 25.
    h = both([rep("a", saturday - 15 * HOUR)], saturday + 57 * HOUR, weekends)["e"]
    assert h.soak == h.healthy == 47 * HOUR


def test_show_sees_reports_added_in_its_session(cv: Conveyor, clock: ManualClock) -> None:
    # As the ORM query before it did: pending rows are flushed before the read.
    apply_yaml(cv, DEFINITIONS)
    t0 = clock.now()
    with cv.store.session() as s:
        s.add(
            HealthReportRow(
                environment="prod",
                health_node=HealthNodeRow(environment="prod", entity="cluster-a", node="n1"),
                time=t0,
                time_us=us(t0),
                live=True,
                state_code=HEALTH_STATE_CODES["ERROR"],
                version="1.0.0",
                received_at=t0,
            )
        )
        got = health.show(s, "prod", "shop", "1.0.0", t0 + HOUR)
    assert got["cluster-a"].unhealthy == HOUR
