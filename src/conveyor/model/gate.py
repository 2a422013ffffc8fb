"""What a gate answers: Pass, Wait(until, reason) or Fail(reason)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Pass:
    reason: str = "passed"
    kind: str = "pass"


@dataclass(frozen=True)
class Wait:
    """Not yet. `until` is the earliest time to look again; None means 'on the next event'."""

    reason: str
    until: datetime | None = None
    kind: str = "wait"


@dataclass(frozen=True)
class Fail:
    reason: str
    kind: str = "fail"


GateResult = Pass | Wait | Fail
