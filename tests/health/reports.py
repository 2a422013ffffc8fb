"""Building reports for the health tests: times in a known week, reports with defaults."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from conveyor.health import HealthState, Report

H, D, W, E = (HealthState.HEALTHY, HealthState.DEFERRING, HealthState.WARNING, HealthState.ERROR)
MIN = timedelta(minutes=1)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    # November 2026: 16th is a Monday, 20th Friday, 21st/22nd the weekend, 23rd Monday.
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def rep(
    node: str,
    time: datetime,
    state: HealthState | None = H,
    *,
    live: bool = True,
    version: str = "v2",
    entity: str = "e",
) -> Report:
    return Report(entity, node, time, live, state, version)
