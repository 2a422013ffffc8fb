"""Allow and deny windows: when a promotion may start (seed 004's sync windows, seed 001's
maintenance window).

A window opens at each time its cron `schedule` names, in its `timeZone` (IANA, default
UTC), and stays open for `duration`, counted in real time (a window opened just before a
DST change is not an hour shorter or longer). Argo CD's semantics: no window at all means
open; once any allow window is defined, only while one is active; an active deny window
closes whatever allows; a window's end is exclusive.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import BaseModel, ConfigDict, PlainSerializer, WithJsonSchema, field_validator

from conveyor.model.duration import format_duration, parse_duration

MAX_WINDOW = timedelta(days=7)
# How far ahead to look for the next opening: a yearly window is the rarest worth waiting on.
HORIZON = timedelta(days=366)
_SECOND = timedelta(seconds=1)


class WindowDef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["allow", "deny"] = "allow"
    schedule: str  # cron, five fields: minute hour day-of-month month day-of-week
    duration: Annotated[
        timedelta,
        PlainSerializer(format_duration, return_type=str),
        WithJsonSchema({"type": "string", "pattern": r"^(\d+(w|d|h|m|s))+$", "examples": ["8h"]}),
    ]
    timeZone: str = "UTC"
    # An admin may push one promotion through while this window keeps it out, with a reason.
    manualOverride: bool = False

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        if len(value.split()) != 5 or not croniter.is_valid(value):
            raise ValueError(
                f"'{value}' is not a cron schedule: five fields, minute hour day-of-month "
                "month day-of-week, e.g. '0 22 * * 5' (Fridays at 22:00)"
            )
        return value

    @field_validator("duration", mode="before")
    @classmethod
    def _duration(cls, value: object) -> timedelta:
        delta = parse_duration(value) if isinstance(value, str) else value
        if not isinstance(delta, timedelta) or delta <= timedelta(0) or delta > MAX_WINDOW:
            raise ValueError(
                f"a window lasts more than 0s and at most {format_duration(MAX_WINDOW)}"
            )
        return delta

    @field_validator("timeZone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone '{value}': use an IANA name such as Europe/Paris or UTC"
            ) from None
        return value

    def describe(self) -> str:
        zone = "" if self.timeZone == "UTC" else f" {self.timeZone}"
        return f"{self.kind} '{self.schedule}'{zone} for {format_duration(self.duration)}"

    def occurrence(self, at: datetime) -> tuple[datetime, datetime] | None:
        """The opening [start, end) that covers `at`, if any (UTC)."""
        local = at.astimezone(ZoneInfo(self.timeZone))
        start = croniter(self.schedule, local + _SECOND).get_prev(datetime).astimezone(UTC)
        end = start + self.duration
        return (start, end) if start <= at < end else None

    def next_start(self, after: datetime) -> datetime:
        local = after.astimezone(ZoneInfo(self.timeZone))
        found: datetime = croniter(self.schedule, local).get_next(datetime)
        return found.astimezone(UTC)


@dataclass(frozen=True)
class Decision:
    open: bool
    reason: str
    window: WindowDef | None = None  # the window that decides, if one does
    until: datetime | None = None  # when the decision may change (an active window's end)
    next_opening: datetime | None = None  # when closed: the next time it opens


def decide(windows: list[WindowDef], at: datetime) -> Decision:
    """May a promotion start at `at`, which window says so, and until when."""
    now = decide_now(windows, at)
    if now.open:
        return now
    return Decision(False, now.reason, now.window, now.until, next_opening(windows, at))


def overridable(windows: list[WindowDef], decision: Decision) -> bool:
    """Whether an admin's override may open what `decision` closes: the deny window that
    decides allows overrides, or (outside every allow window) every allow window does."""
    if decision.open:
        return True
    if decision.window is not None:
        return decision.window.manualOverride
    return all(w.manualOverride for w in windows if w.kind == "allow")


def decide_now(windows: list[WindowDef], at: datetime) -> Decision:
    for w in windows:
        span = w.occurrence(at) if w.kind == "deny" else None
        if span is not None:
            return Decision(False, f"deny window {w.describe()} until {_t(span[1])}", w, span[1])
    allows = [w for w in windows if w.kind == "allow"]
    if not allows:
        return Decision(True, "no allow window is defined: open")
    for w in allows:
        span = w.occurrence(at)
        if span is not None:
            return Decision(True, f"allow window {w.describe()} until {_t(span[1])}", w, span[1])
    return Decision(False, "outside every allow window", None)


def next_opening(windows: list[WindowDef], at: datetime) -> datetime | None:
    """The first moment after `at` at which `decide_now` says open (within HORIZON)."""
    candidates = {at}
    moment = at
    for _ in range(10_000):  # bounded: each step moves to the next start or end of a window
        step = decide_now(windows, moment)
        if step.open and moment > at:
            return moment
        later = [w.next_start(moment) for w in windows if w.kind == "allow"]
        if step.until is not None:
            later.append(step.until)
        later = [t for t in later if t > moment and t not in candidates]
        if not later or min(later) - at > HORIZON:
            return None
        moment = min(later)
        candidates.add(moment)
    return None


def _t(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")
