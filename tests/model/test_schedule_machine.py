"""The scheduling decisions as a state machine: random sequences of triggers, gate answers,
task results, retries, terminations, recalls and superseding releases, over a flow with a
fan-out and a fan-in, keep the engine's invariants. No database: plain values, the pure
decisions of `model.schedule` and the transition tables of `model.states`, composed the way
the engine's pass composes them."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from conveyor.errors import IllegalTransition
from conveyor.model.release import newer
from conveyor.model.schedule import (
    Claim,
    Holder,
    Outcome,
    claim,
    conclude,
    ready,
    recall_stop,
)
from conveyor.model.states import PromotionState as P
from conveyor.model.states import ReleaseStatus as R
from conveyor.model.states import check_promotion, check_release

# dev -> qa -> {prod, prod-eu} -> edge: a fan-out and a fan-in. A node is its environment.
PARENTS: dict[str, tuple[str, ...]] = {
    "dev": (),
    "qa": ("dev",),
    "prod": ("qa",),
    "prod-eu": ("qa",),
    "edge": ("prod", "prod-eu"),
}
ORDER = list(PARENTS)


def descendants(node: str) -> set[str]:
    found = {n for n, parents in PARENTS.items() if node in parents}
    for child in list(found):
        found |= descendants(child)
    return found


@dataclass
class Release:
    version: str
    status: R = R.RUNNING
    nodes: dict[str, P] = field(default_factory=lambda: dict.fromkeys(PARENTS, P.PENDING))
    gates_open: set[str] = field(default_factory=set)


class Scheduling(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.releases: dict[str, Release] = {}
        self.deployed: dict[str, list[str]] = {env: [] for env in PARENTS}  # succeeded there
        self.audit: list[tuple[str, str, str, str]] = []  # (version, node or "", old, new)
        self.next = 0

    # --- the shell: transitions checked and audited, as the engine writes them ----------

    def move(self, r: Release, node: str, new: P) -> None:
        old = r.nodes[node]
        if old == new:
            return
        check_promotion(f"{r.version}/{node}", old, new)
        if new == P.RUNNING:  # never an older release over a newer one
            assert not any(newer(v, r.version) for v in self.deployed[node]), (r, node)
        if new == P.SUCCEEDED:
            self.deployed[node].append(r.version)
        if old == P.SUCCEEDED:
            self.deployed[node].remove(r.version)
        r.nodes[node] = new
        self.audit.append((r.version, node, old, new))

    def set_status(self, r: Release, new: R) -> None:
        if r.status == new:
            return
        check_release(r.version, r.status, new)
        self.audit.append((r.version, "", r.status, new))
        r.status = new

    def holders(self, env: str) -> list[Holder]:
        return [
            Holder(hash((r.version, env)), "shop", r.version, r.nodes[env])
            for r in self.releases.values()
            if r.nodes[env].holds_environment
        ]

    def settle(self) -> None:
        """Passes until nothing moves, oldest release first, as the engine's pass does."""
        for _ in range(50):
            moved = False
            for r in sorted(self.releases.values(), key=lambda r: int(r.version.split(".")[1])):
                moved |= self.look_at(r)
            if not moved:
                return
        raise AssertionError("the schedule did not settle")

    def look_at(self, r: Release) -> bool:
        before = (r.status, dict(r.nodes))
        if r.status == R.RUNNING:
            for node in ORDER:
                parents = [r.nodes[p] for p in PARENTS[node]]
                if r.nodes[node] == P.PENDING and ready(parents):
                    self.move(r, node, P.WAITING)
                if r.nodes[node] == P.WAITING and node in r.gates_open:
                    decision, _ = claim(
                        hash((r.version, node)),
                        r.version,
                        False,
                        self.holders(node),
                        self.deployed[node],
                    )
                    if decision == Claim.GO:
                        self.move(r, node, P.RUNNING)
                    elif decision == Claim.SUPERSEDED:
                        self.move(r, node, P.SUPERSEDED)
            outcome = conclude(r.status, list(r.nodes.values()))
            if outcome != Outcome.OPEN:
                self.set_status(r, R(outcome.value))
        return before != (r.status, r.nodes)

    # --- events ----------------------------------------------------------------------

    @precondition(lambda self: len(self.releases) < 4)  # few releases, many events each
    @rule(supersede=st.booleans(), older=st.booleans())
    def trigger(self, supersede: bool, older: bool) -> None:
        self.next += 1
        # Now and then a release of a lower version than some already out (a hotfix line).
        minor = self.next * 10 - (15 if older and self.next > 1 else 0)
        r = Release(f"1.{minor}.0")
        if r.version in self.releases:
            return
        if supersede:
            for other in self.releases.values():
                if other.status == R.RUNNING and newer(r.version, other.version):
                    for node, state in other.nodes.items():
                        if state in (P.PENDING, P.WAITING):
                            self.move(other, node, P.SUPERSEDED)
        self.releases[r.version] = r
        self.audit.append((r.version, "", R.CREATED, R.RUNNING))
        self.settle()

    def _pick(self, data: st.DataObject, states: tuple[P, ...]) -> tuple[Release, str] | None:
        choices = [
            (r, n) for r in self.releases.values() for n, s in r.nodes.items() if s in states
        ]
        return data.draw(st.sampled_from(choices)) if choices else None

    @rule(data=st.data(), passes=st.booleans())
    def gate_answers(self, data: st.DataObject, passes: bool) -> None:
        picked = self._pick(data, (P.WAITING,))
        if picked is None:
            return
        r, node = picked
        if passes:
            r.gates_open.add(node)
        else:
            self.move(r, node, P.FAILED)
        self.settle()

    @rule(data=st.data(), ok=st.booleans())
    def task_finishes(self, data: st.DataObject, ok: bool) -> None:
        picked = self._pick(data, (P.RUNNING,))
        if picked is None:
            return
        r, node = picked
        self.move(r, node, P.SUCCEEDED if ok else P.FAILED)
        self.settle()

    @rule(data=st.data())
    def retry(self, data: st.DataObject) -> None:
        failed = [r for r in self.releases.values() if r.status == R.FAILED]
        if not failed:
            return
        r = data.draw(st.sampled_from(failed))
        nodes = [n for n, s in r.nodes.items() if s in (P.FAILED, P.REJECTED)]
        if any(newer(v, r.version) for n in nodes for v in self.deployed[n]):
            return  # refused, as `release retry` refuses it
        for node in nodes:
            self.move(r, node, P.WAITING)
            r.gates_open.discard(node)
        self.set_status(r, R.RUNNING)
        self.settle()

    @rule(data=st.data())
    def terminate(self, data: st.DataObject) -> None:
        live = [r for r in self.releases.values() if r.status in (R.RUNNING, R.FAILED)]
        if not live:
            return
        r = data.draw(st.sampled_from(live))
        for node, state in r.nodes.items():
            if not state.final:
                self.move(r, node, P.TERMINATED)
        self.set_status(r, R.TERMINATED)
        self.settle()

    @rule(data=st.data())
    def recall(self, data: st.DataObject) -> None:
        live = [r for r in self.releases.values() if r.status != R.RECALLED]
        if not live:
            return
        r = data.draw(st.sampled_from(live))
        self.set_status(r, R.RECALLED)
        for node, state in r.nodes.items():
            stop = recall_stop(state)
            if stop is not None:
                self.move(r, node, stop)
        self.settle()

    # --- invariants ------------------------------------------------------------------

    @invariant()
    def one_deploying_per_environment(self) -> None:
        for env in PARENTS:
            assert len(self.holders(env)) <= 1, env

    @invariant()
    def succeeded_exactly_when_every_node_did(self) -> None:
        for r in self.releases.values():
            all_done = all(s == P.SUCCEEDED for s in r.nodes.values())
            assert (r.status == R.SUCCEEDED) == (all_done and r.status != R.RECALLED), r

    @invariant()
    def a_failed_node_fails_its_release(self) -> None:
        for r in self.releases.values():
            if any(s in (P.FAILED, P.REJECTED) for s in r.nodes.values()):
                assert r.status in (R.FAILED, R.TERMINATED, R.RECALLED), r

    @invariant()
    def descendants_of_a_failure_stay_blocked(self) -> None:
        """Below a failed node nothing starts (pending, or stopped without having run)."""
        never_ran = (P.PENDING, P.SUPERSEDED, P.SKIPPED, P.TERMINATED)
        for r in self.releases.values():
            for node, state in r.nodes.items():
                if state == P.FAILED:
                    for d in descendants(node):
                        assert r.nodes[d] in never_ran, (r, node, d)

    @invariant()
    def the_audit_replays_to_the_state(self) -> None:
        """Every transition audited once: replaying the trail gives every state now."""
        nodes: dict[tuple[str, str], str] = {}
        statuses: dict[str, str] = {}
        for version, node, old, new in self.audit:
            if node:
                assert nodes.get((version, node), P.PENDING) == old
                nodes[version, node] = new
            else:
                assert statuses.get(version, R.CREATED) == old
                statuses[version] = new
        for r in self.releases.values():
            assert statuses[r.version] == r.status
            for node, state in r.nodes.items():
                assert nodes.get((r.version, node), P.PENDING) == state


TestScheduling = Scheduling.TestCase
TestScheduling.settings = settings(max_examples=300, stateful_step_count=30, deadline=None)


def test_an_illegal_transition_is_a_typed_error() -> None:
    with pytest.raises(IllegalTransition, match="succeeded -> running"):
        check_promotion("1.0.0/dev", P.SUCCEEDED, P.RUNNING)
    with pytest.raises(IllegalTransition, match="recalled -> running"):
        check_release("1.0.0", R.RECALLED, R.RUNNING)
