"""What a gate answers: Pass, Wait(until, reason), Fail(reason) or Recall(reason)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Pass:
    """Yes, for now. `until`: when the answer may turn (a canary's recall soak), so the
    engine looks again then even while other gates of the stage still wait."""

    reason: str = "passed"
    until: datetime | None = None
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


@dataclass(frozen=True)
class Recall:
    """The release is bad: stop it everywhere and roll back where it runs (seed 001)."""

    reason: str
    kind: str = "recall"


GateResult = Pass | Wait | Fail | Recall
