"""The only place Conveyor reads time.

Everything else receives a Clock, so a 31-day soak is tested in milliseconds and the
engine can be driven by a controllable clock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def sleep_until(
        self, until: datetime | None, wake: threading.Event, cap: timedelta | None = None
    ) -> None:
        """Return at `until`, or earlier when `wake` is set. `None` means until woken.
        `cap`: in any case after that much real time (a safety net against a lost wake-up;
        a controllable clock's jump is not capped)."""
        ...


class SystemClock:
    """Wall-clock time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep_until(
        self, until: datetime | None, wake: threading.Event, cap: timedelta | None = None
    ) -> None:
        limit = None if cap is None else cap.total_seconds()
        if until is None:
            wake.wait(limit)
            return
        delay = (until - self.now()).total_seconds()
        if delay > 0:
            wake.wait(delay if limit is None else min(delay, limit))


class ManualClock:
    """A clock that moves only when told to; sleeping jumps straight to the deadline.

    Tests drive soak times and backoffs with it; `conveyor simulate` replays with it.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start")
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ValueError("time does not go backwards")
        with self._lock:
            self._now += delta
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            if when < self._now:
                raise ValueError("time does not go backwards")
            self._now = when

    def sleep_until(
        self, until: datetime | None, wake: threading.Event, cap: timedelta | None = None
    ) -> None:
        if until is None:
            wake.wait(None if cap is None else cap.total_seconds())
            return
        with self._lock:
            if until > self._now:
                self._now = until


@dataclass(frozen=True)
class Deadline:
    """When some work must end by, on a clock: with a ManualClock a test reaches it by
    advancing the clock, not by waiting."""

    clock: Clock
    at: datetime

    @classmethod
    def after(cls, clock: Clock, seconds: float) -> Deadline:
        return cls(clock, clock.now() + timedelta(seconds=seconds))

    def passed(self) -> bool:
        return self.clock.now() >= self.at

    def left(self) -> float:
        """Seconds until it passes (negative once it has)."""
        return (self.at - self.clock.now()).total_seconds()


def utc(dt: datetime) -> datetime:
    """Normalise a datetime read back from a store that dropped the zone (SQLite)."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
