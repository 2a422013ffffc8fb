"""The promotion state machine and the release status (DESIGN.md section 1)."""

from __future__ import annotations

from enum import StrEnum

from conveyor.errors import IllegalTransition


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


def check_promotion(subject: str, src: PromotionState, dst: PromotionState) -> None:
    """Raise IllegalTransition unless `src -> dst` is in the promotion table."""
    if not can_move(src, dst):
        raise IllegalTransition("promotion", subject, src, dst)


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


R = ReleaseStatus
RELEASE_ALLOWED: dict[ReleaseStatus, frozenset[ReleaseStatus]] = {
    R.CREATED: frozenset({R.RUNNING, R.TERMINATED, R.RECALLED}),
    R.RUNNING: frozenset({R.SUCCEEDED, R.FAILED, R.RECALLED, R.SUPERSEDED, R.TERMINATED}),
    # A retry sends a failed release back to running.
    R.FAILED: frozenset({R.RUNNING, R.RECALLED, R.TERMINATED}),
    R.SUCCEEDED: frozenset({R.RECALLED}),
    R.SUPERSEDED: frozenset({R.RECALLED}),
    R.RECALLED: frozenset(),
    # What a terminated release had deployed can still be recalled.
    R.TERMINATED: frozenset({R.RECALLED}),
}


def check_release(subject: str, src: ReleaseStatus, dst: ReleaseStatus) -> None:
    """Raise IllegalTransition unless `src -> dst` is in the release table."""
    if src != dst and dst not in RELEASE_ALLOWED[src]:
        raise IllegalTransition("release", subject, src, dst)


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
