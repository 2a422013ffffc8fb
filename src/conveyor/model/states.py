"""The promotion state machine and the release status (DESIGN.md section 1)."""

from __future__ import annotations

from enum import StrEnum


class PromotionState(StrEnum):
    PENDING = "pending"  # parents not done
    WAITING = "waiting"  # entry gates not yet met, or the environment is busy
    RUNNING = "running"  # workflow
    VERIFYING = "verifying"  # verification gates and tasks
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RECALLED = "recalled"
    REJECTED = "rejected"
    SUPERSEDED = "superseded"
    SKIPPED = "skipped"
    TERMINATED = "terminated"

    @property
    def active(self) -> bool:
        return self in _ACTIVE

    @property
    def final(self) -> bool:
        return self in _FINAL

    @property
    def holds_environment(self) -> bool:
        """A promotion in these states is deploying: no other may run in its environment."""
        return self in (PromotionState.RUNNING, PromotionState.VERIFYING)


_ACTIVE = frozenset({PromotionState.WAITING, PromotionState.RUNNING, PromotionState.VERIFYING})
_FINAL = frozenset(
    {
        PromotionState.SUCCEEDED,
        PromotionState.FAILED,
        PromotionState.RECALLED,
        PromotionState.REJECTED,
        PromotionState.SUPERSEDED,
        PromotionState.SKIPPED,
        PromotionState.TERMINATED,
    }
)

P = PromotionState
ALLOWED: dict[PromotionState, frozenset[PromotionState]] = {
    P.PENDING: frozenset({P.WAITING, P.SUPERSEDED, P.SKIPPED, P.TERMINATED}),
    P.WAITING: frozenset({P.RUNNING, P.FAILED, P.REJECTED, P.SUPERSEDED, P.SKIPPED, P.TERMINATED}),
    P.RUNNING: frozenset({P.VERIFYING, P.SUCCEEDED, P.FAILED, P.TERMINATED}),
    P.VERIFYING: frozenset({P.SUCCEEDED, P.FAILED, P.RECALLED, P.TERMINATED}),
    P.SUCCEEDED: frozenset({P.RECALLED}),
    # A retry sends a failed promotion back to the start of its node.
    P.FAILED: frozenset({P.WAITING, P.TERMINATED}),
    P.RECALLED: frozenset(),
    P.REJECTED: frozenset({P.WAITING}),
    P.SUPERSEDED: frozenset(),
    P.SKIPPED: frozenset(),
    P.TERMINATED: frozenset(),
}


def can_move(src: PromotionState, dst: PromotionState) -> bool:
    return src == dst or dst in ALLOWED[src]


class ReleaseStatus(StrEnum):
    CREATED = "created"  # exists, not yet triggered
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RECALLED = "recalled"
    SUPERSEDED = "superseded"
    TERMINATED = "terminated"

    @property
    def open(self) -> bool:
        """The engine still has something to do for a release in these states."""
        return self in (ReleaseStatus.RUNNING, ReleaseStatus.FAILED)


class TaskStatus(StrEnum):
    """One task run. `retrying` waits out a backoff; `polling` asked to be run again later
    (an action waiting on something outside, without holding a thread)."""

    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    POLLING = "polling"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in (TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED)

    @property
    def scheduled(self) -> bool:
        """Waiting for its `next_attempt_at`."""
        return self in (TaskStatus.RETRYING, TaskStatus.POLLING)


UNFINISHED_TASKS = [s.value for s in TaskStatus if not s.final]
