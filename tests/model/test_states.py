"""The promotion state machine and release statuses."""

from __future__ import annotations

import pytest

from conveyor.model.states import ALLOWED, PromotionState, ReleaseStatus, can_move

P = PromotionState
EVERY = list(PromotionState)

# Moves the lifecycle needs: gates, deployment, verification, retry, recall, stop.
EXPECTED = {
    (P.PENDING, P.WAITING),
    (P.PENDING, P.SUPERSEDED),
    (P.PENDING, P.SKIPPED),
    (P.PENDING, P.TERMINATED),
    (P.WAITING, P.RUNNING),
    (P.WAITING, P.FAILED),
    (P.WAITING, P.REJECTED),
    (P.WAITING, P.SUPERSEDED),
    (P.WAITING, P.SKIPPED),
    (P.WAITING, P.TERMINATED),
    (P.RUNNING, P.VERIFYING),
    (P.RUNNING, P.SUCCEEDED),
    (P.RUNNING, P.FAILED),
    (P.RUNNING, P.TERMINATED),
    (P.VERIFYING, P.SUCCEEDED),
    (P.VERIFYING, P.FAILED),
    (P.VERIFYING, P.RECALLED),
    (P.VERIFYING, P.TERMINATED),
    (P.SUCCEEDED, P.RECALLED),
    (P.FAILED, P.WAITING),
    (P.FAILED, P.TERMINATED),
    (P.REJECTED, P.WAITING),
}


@pytest.mark.parametrize(("src", "dst"), sorted(EXPECTED))
def test_allowed(src: PromotionState, dst: PromotionState) -> None:
    assert can_move(src, dst)


@pytest.mark.parametrize(
    ("src", "dst"),
    [
        (P.PENDING, P.RUNNING),  # entry gates are never skipped
        (P.PENDING, P.SUCCEEDED),
        (P.WAITING, P.VERIFYING),
        (P.WAITING, P.SUCCEEDED),
        (P.RUNNING, P.WAITING),
        (P.RUNNING, P.SUPERSEDED),  # what is deploying finishes
        (P.RUNNING, P.REJECTED),
        (P.VERIFYING, P.RUNNING),
        (P.VERIFYING, P.SUPERSEDED),
        (P.SUCCEEDED, P.RUNNING),
        (P.SUCCEEDED, P.FAILED),
        (P.SUCCEEDED, P.WAITING),
        (P.FAILED, P.SUCCEEDED),
        (P.FAILED, P.RUNNING),
        (P.RECALLED, P.WAITING),
        (P.SUPERSEDED, P.WAITING),
        (P.SKIPPED, P.WAITING),
        (P.TERMINATED, P.WAITING),
        (P.REJECTED, P.RUNNING),
    ],
)
def test_forbidden(src: PromotionState, dst: PromotionState) -> None:
    assert not can_move(src, dst)


def test_every_state_has_a_row() -> None:
    assert set(ALLOWED) == set(EVERY)


@pytest.mark.parametrize("state", EVERY)
def test_staying_put_is_always_allowed(state: PromotionState) -> None:
    assert can_move(state, state)


@pytest.mark.parametrize("state", [P.RECALLED, P.SUPERSEDED, P.SKIPPED, P.TERMINATED])
def test_dead_ends(state: PromotionState) -> None:
    assert [d for d in EVERY if d != state and can_move(state, d)] == []


def test_nothing_moves_back_to_pending() -> None:
    assert [s for s in EVERY if s != P.PENDING and can_move(s, P.PENDING)] == []


def test_every_state_is_reachable_from_pending() -> None:
    seen = {P.PENDING}
    frontier = [P.PENDING]
    while frontier:
        src = frontier.pop()
        for dst in EVERY:
            if dst not in seen and can_move(src, dst):
                seen.add(dst)
                frontier.append(dst)
    assert seen == set(EVERY)


def test_only_deploying_states_reach_verifying_or_success() -> None:
    assert {s for s in EVERY if s != P.VERIFYING and can_move(s, P.VERIFYING)} == {P.RUNNING}
    assert {s for s in EVERY if s != P.SUCCEEDED and can_move(s, P.SUCCEEDED)} == {
        P.RUNNING,
        P.VERIFYING,
    }


def test_active_final_and_holding() -> None:
    active = {s for s in EVERY if s.active}
    final = {s for s in EVERY if s.final}
    assert active == {P.WAITING, P.RUNNING, P.VERIFYING}
    assert final == {
        P.SUCCEEDED,
        P.FAILED,
        P.RECALLED,
        P.REJECTED,
        P.SUPERSEDED,
        P.SKIPPED,
        P.TERMINATED,
    }
    assert not active & final
    assert set(EVERY) - active - final == {P.PENDING}
    assert {s for s in EVERY if s.holds_environment} == {P.RUNNING, P.VERIFYING}


def test_an_active_promotion_can_always_be_terminated() -> None:
    for s in EVERY:
        if s.active or s == P.PENDING:
            assert can_move(s, P.TERMINATED), s


def test_states_are_their_text() -> None:
    assert P("waiting") is P.WAITING
    assert str(P.RUNNING) == "running"
    with pytest.raises(ValueError):
        P("done")


def test_release_status_open() -> None:
    assert {s for s in ReleaseStatus if s.open} == {ReleaseStatus.RUNNING, ReleaseStatus.FAILED}
    assert str(ReleaseStatus.CREATED) == "created"
