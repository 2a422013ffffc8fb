"""Durations: parsing what users write, formatting for people, and the limits."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conveyor.model.definitions import ProbeDef
from conveyor.model.duration import check_limit, format_duration, parse_duration

UNIT_SECONDS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
FORMAT_UNITS = ("d", "h", "m", "s")  # the units format_duration writes, largest first
TOKEN = re.compile(r"(\d+)([a-z])")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("3d", timedelta(days=3)),
        ("1w", timedelta(weeks=1)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("90m", timedelta(minutes=90)),
        ("0s", timedelta(0)),
        ("  2H ", timedelta(hours=2)),
        ("1h 30m", timedelta(hours=1, minutes=30)),
        (45, timedelta(seconds=45)),
        (0, timedelta(0)),
    ],
)
def test_parse(text: str | int, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "2", "h", "2 hours", "1.5h", "-5m", "2y", "1h-30m", "h2", "2hh", "1ms", "PT1H"],
)
def test_parse_refuses_non_durations(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    # The message helps: it shows an example of what to write.
    assert "30s" in str(info.value) or "2h" in str(info.value)


def test_parse_refuses_negative_integers_and_booleans() -> None:
    with pytest.raises(ValueError):
        parse_duration(-1)
    with pytest.raises(ValueError):
        parse_duration(True)
    with pytest.raises(ValueError):
        parse_duration(False)


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=-5), "0s"),
        (timedelta(seconds=45), "45s"),
        (timedelta(minutes=1), "1m"),
        (timedelta(hours=2), "2h"),
        (timedelta(hours=1, minutes=12), "1h12m"),
        (timedelta(days=3, hours=4), "3d4h"),
        (timedelta(days=1, minutes=5), "1d5m"),
        (timedelta(weeks=2), "14d"),
        (timedelta(seconds=59.6), "1m"),
        # Only two units are written: the rest is cut, not rounded.
        (timedelta(days=1, hours=23, minutes=59, seconds=59), "1d23h"),
        (timedelta(hours=1, minutes=1, seconds=1), "1h1m"),
    ],
)
def test_format(delta: timedelta, expected: str) -> None:
    assert format_duration(delta) == expected


def _units(delta: timedelta) -> list[tuple[int, str]]:
    """The non-zero (count, unit) parts of a whole-second, non-negative delta."""
    total = int(delta.total_seconds())
    out = []
    for unit in FORMAT_UNITS:
        size = UNIT_SECONDS[unit]
        if total >= size:
            out.append((total // size, unit))
            total %= size
    return out


whole_seconds = st.integers(min_value=0, max_value=400 * 86400).map(lambda s: timedelta(seconds=s))


@st.composite
def two_unit_deltas(draw: st.DrawFn) -> timedelta:
    """Deltas with at most two non-zero parts among days, hours, minutes and seconds."""
    units = draw(st.lists(st.sampled_from(FORMAT_UNITS), max_size=2, unique=True))
    limits = {"d": 400, "h": 23, "m": 59, "s": 59}
    seconds = sum(draw(st.integers(1, limits[u])) * UNIT_SECONDS[u] for u in units)
    return timedelta(seconds=seconds)


@given(two_unit_deltas())
def test_format_is_lossless_for_up_to_two_units(delta: timedelta) -> None:
    assert len(_units(delta)) <= 2
    assert parse_duration(format_duration(delta)) == delta


@given(whole_seconds)
def test_format_truncates_below_its_last_unit(delta: timedelta) -> None:
    text = format_duration(delta)
    parts = TOKEN.findall(text)
    assert 1 <= len(parts) <= 2
    units = [u for _, u in parts]
    # Largest unit first, no unit twice.
    assert units == sorted(set(units), key=FORMAT_UNITS.index)
    back = parse_duration(text)
    assert back <= delta
    smallest_shown = UNIT_SECONDS[units[-1]]
    assert delta - back < timedelta(seconds=smallest_shown)


@given(whole_seconds)
def test_format_parse_format_is_stable(delta: timedelta) -> None:
    text = format_duration(delta)
    assert format_duration(parse_duration(text)) == text


@given(
    st.lists(
        st.tuples(st.integers(0, 500), st.sampled_from(list(UNIT_SECONDS))), min_size=1, max_size=5
    )
)
def test_parse_sums_its_parts(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{n}{u}" for n, u in parts)
    expected = sum(n * UNIT_SECONDS[u] for n, u in parts)
    assert parse_duration(text) == timedelta(seconds=expected)


def test_check_limit() -> None:
    limit = timedelta(days=31)
    assert check_limit(limit, limit, "duration") == limit
    assert check_limit(timedelta(0), limit, "duration") == timedelta(0)
    with pytest.raises(ValueError) as info:
        check_limit(timedelta(days=32), limit, "duration")
    message = str(info.value)
    assert "duration" in message and "32d" in message and "31d" in message
    with pytest.raises(ValueError):
        check_limit(limit + timedelta(seconds=1), limit, "duration")


@pytest.mark.parametrize("text", ["9999999999d", "99999999999999999999s", 10**20])
def test_parse_refuses_durations_too_large_to_represent(text: str | int) -> None:
    # The contract is a ValueError with a hint; validation turns only ValueError into a problem.
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("field", ["interval", "timeout"])
def test_a_probe_limit_names_the_field_over_it(field: str) -> None:
    probe = {"entity": "cluster-a", "url": "http://127.0.0.1/health", field: "2d"}
    with pytest.raises(ValueError, match=f"{field} 2d is over its limit of 1d"):
        ProbeDef.model_validate(probe)
