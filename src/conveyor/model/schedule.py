"""The engine's scheduling decisions, as pure functions over plain values.

Which promotions may start, whether one may deploy to its environment now, what a release
has come to, what a recall does to each promotion: the engine's pass loads the facts,
asks these functions, and writes what they decide. They read no store and no clock, so
they are tested alone, and as a state machine over random sequences of events
(tests/model/test_schedule_machine.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from conveyor.model.release import newer, parse_version
from conveyor.model.states import PromotionState as P
from conveyor.model.states import ReleaseStatus as R


def ready(parents: Iterable[P]) -> bool:
    """A pending promotion may start once every promotion of its parent nodes succeeded."""
    return all(state == P.SUCCEEDED for state in parents)


class Claim(StrEnum):
    GO = "go"  # deploy now
    BUSY = "busy"  # another promotion deploys there: wait for it
    SUPERSEDED = "superseded"  # a newer release of the product is deployed there


@dataclass(frozen=True)
class Holder:
    """A promotion deploying to an environment now (running or verifying)."""

    promotion: int
    product: str
    version: str
    state: P
    what: str = ""  # says what holds it, where that is not a release's promotion

    def __str__(self) -> str:
        return self.what or f"{self.product}@{self.version} is {self.state}"


def claim(
    promotion: int,
    version: str,
    rollback: bool,
    holders: Sequence[Holder],
    deployed: Iterable[str],
) -> tuple[Claim, str]:
    """May `promotion` (of `version`) deploy to its environment now? `holders` deploy there
    now; `deployed` are the versions of its product that succeeded there. One promotion
    deploys to an environment at a time, and never an older release over a newer one,
    except a rollback, which a person asked for."""
    ahead = [] if rollback else [v for v in deployed if newer(v, version)]
    if ahead:
        return Claim.SUPERSEDED, max(ahead, key=parse_version)
    busy = [h for h in holders if h.promotion != promotion]
    if busy:
        return Claim.BUSY, str(busy[0])
    return Claim.GO, ""


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"  # every node succeeded (its onSuccess hooks still to run)
    FAILED = "failed"
    SUPERSEDED = "superseded"
    OPEN = "open"  # something still moves, or waits for a person


def conclude(status: R, states: Sequence[P]) -> Outcome:
    """What a running release has come to, from its flow promotions' states. It succeeds
    exactly when every node did; any failed or rejected node fails it (its descendants
    stay pending, blocked, until a retry or a terminate)."""
    if status != R.RUNNING:
        return Outcome.OPEN
    if all(s == P.SUCCEEDED for s in states):
        return Outcome.SUCCEEDED
    if any(s in (P.FAILED, P.REJECTED) for s in states):
        return Outcome.FAILED
    if any(s == P.SUPERSEDED for s in states) and not any(s.active for s in states):
        return Outcome.SUPERSEDED
    return Outcome.OPEN


# What a recall does to a promotion of the recalled release, by its state; the environments
# where it deployed (or was deploying) get a rollback.
RECALL_STOP: dict[P, P] = {
    P.PENDING: P.SKIPPED,
    P.WAITING: P.SKIPPED,
    P.RUNNING: P.TERMINATED,
    P.VERIFYING: P.RECALLED,
    P.SUCCEEDED: P.RECALLED,
    P.FAILED: P.TERMINATED,
}


def recall_stop(state: P) -> P | None:
    return RECALL_STOP.get(state)


def touched_by_recall(state: P) -> bool:
    """A recalled release's promotion in this state deployed (or was deploying): its
    environment is rolled back to the release before."""
    return state in (P.RUNNING, P.VERIFYING, P.SUCCEEDED)
