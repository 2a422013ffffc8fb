"""The approval gate end to end: rules by group, separation of duties, expiry, rejection,
and every refusal; window overrides by an admin."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from conveyor.clock import ManualClock
from conveyor.engine.service import Conveyor
from conveyor.errors import Conflict, Forbidden
from conveyor.model.access import Identity, Role, Scope
from tests.conftest import BASE, DIGEST, apply_yaml

DEFS = """
---
apiVersion: conveyor.dev/v1
kind: PromotionFlow
metadata: {name: main}
spec:
  version: "1.00"
  product: shop
  triggerEnvironment: dev
  environments:
    - {name: qa, dependsOn: [dev]}
    - {name: prod, dependsOn: [qa]}
    - {name: prod-eu, dependsOn: [prod]}
---
apiVersion: conveyor.dev/v1
kind: PromotionPolicy
metadata: {name: production}
spec:
  selector: {environments: {names: [prod]}}
  gates:
    - approval:
        require:
          - {group: release-managers}
          - {group: security}
        expiresAfter: 1h
---
apiVersion: conveyor.dev/v1
kind: PromotionPolicy
metadata: {name: qa}
spec:
  selector: {environments: {names: [qa]}}
  gates:
    - approval:
        require: [{users: [tester, erin], count: 1}]
"""
WEB = {"web": f"registry.local/web@{DIGEST}"}


@pytest.fixture
def team(cv: Conveyor) -> dict[str, Conveyor]:
    apply_yaml(cv, BASE + DEFS)
    cv.add_user("alice", ["release-managers"])
    cv.add_user("bob", ["security"])
    cv.add_user("carol", ["security"])
    cv.add_user("erin", [])
    cv.grant("group:release-managers", Role.APPROVER, Scope(labels=(("tier", "prod"),)))
    cv.grant("group:security", Role.APPROVER, Scope(("prod",)))
    cv.grant("user:carol", Role.APPROVER, Scope(("dev",)))
    cv.grant("user:erin", Role.APPROVER, Scope())
    cv.revoke(next(g.id for g in cv.grants() if g.subject == "group:security"))
    cv.grant("user:bob", Role.APPROVER, Scope(("prod",)))

    def as_(name: str) -> Conveyor:
        return Conveyor(cv.store, cv.clock, cv.registry, Identity(name, local=False))

    return {"admin": cv, **{n: as_(n) for n in ("alice", "bob", "carol", "erin")}}


def started(cv: Conveyor, version: str = "1.0.0") -> str:
    cv.create_release("shop", version, WEB)
    cv.trigger("main", f"shop@{version}")
    cv.run_until_idle()
    return f"shop@{version}"


def state(cv: Conveyor, ref: str, env: str) -> tuple[str, str]:
    (node,) = [n for n in cv.show(ref).nodes if n.environment == env]
    return node.state, node.detail


def test_production_waits_for_one_approval_per_group_from_people_other_than_the_releaser(
    team: dict[str, Conveyor],
) -> None:
    admin, alice, bob, carol, erin = (team[k] for k in ("admin", "alice", "bob", "carol", "erin"))
    ref = started(admin)
    assert state(admin, ref, "qa")[0] == "waiting"
    # the release's creator is in the qa rule's list, but qa is not production: allowed
    admin.approve(f"{ref}/qa")
    admin.run_until_idle()
    assert state(admin, ref, "qa")[0] == "succeeded"
    waiting, detail = state(admin, ref, "prod")
    assert waiting == "waiting"
    assert "0/1 from group release-managers, 0/1 from group security" in detail

    # the one who created and triggered it may not approve production
    admin.add_user("tester", ["release-managers"])
    with pytest.raises(Forbidden, match="separation of duties"):
        admin.approve(f"{ref}/prod")
    # an approver over dev only is out of scope for prod
    carol_err = pytest.raises(Forbidden, match="the role approver over environment prod")
    with carol_err:
        carol.approve(f"{ref}/prod")
    # erin may approve anywhere, but no rule counts her
    with pytest.raises(Forbidden, match="would count for no rule"):
        erin.approve(f"{ref}/prod")
    assert alice.approvals() == [(f"{ref}/prod", detail, alice.approvals()[0][2])]

    alice.approve(f"{ref}/prod", "CHG-1")
    with pytest.raises(Conflict, match="already decided"):
        alice.approve(f"{ref}/prod")
    admin.run_until_idle()
    assert (
        "1/1 from group release-managers, 0/1 from group security" in state(admin, ref, "prod")[1]
    )
    assert alice.approvals() == []
    bob.approve(f"{ref}/prod")
    admin.run_until_idle()
    assert state(admin, ref, "prod")[0] == "succeeded"
    with pytest.raises(Conflict, match="past the point of approval"):
        bob.reject(f"{ref}/prod")
    events = [(e.actor, e.action) for e in admin.audit_log(release=ref, limit=500)]
    assert ("alice", "promotion.approve") in events and ("bob", "promotion.approve") in events


def test_an_approval_expires(team: dict[str, Conveyor], clock: ManualClock) -> None:
    admin, alice, bob = team["admin"], team["alice"], team["bob"]
    ref = started(admin)
    team["erin"].approve(f"{ref}/qa")
    admin.run_until_idle()
    alice.approve(f"{ref}/prod")
    clock.advance(timedelta(hours=2))
    bob.approve(f"{ref}/prod")
    admin.run_until_idle()
    assert (
        "0/1 from group release-managers, 1/1 from group security" in state(admin, ref, "prod")[1]
    )


def test_a_rejection_ends_the_promotion_and_skips_what_comes_after(
    team: dict[str, Conveyor],
) -> None:
    admin, bob = team["admin"], team["bob"]
    ref = started(admin)
    team["erin"].approve(f"{ref}/qa")
    admin.run_until_idle()
    bob.reject(f"{ref}/prod", "no change ticket")
    admin.run_until_idle()
    assert state(admin, ref, "prod") == ("rejected", "rejected by bob: no change ticket")
    assert state(admin, ref, "prod-eu")[0] == "skipped"
    assert admin.show(ref).status == "failed"
    with pytest.raises(Conflict, match="past the point"):
        team["alice"].approve(f"{ref}/prod")


def test_promotions_without_an_approval_gate_or_unknown_ones_are_refused(
    team: dict[str, Conveyor],
) -> None:
    admin = team["admin"]
    ref = started(admin)
    with pytest.raises(Conflict, match="no approval gate"):
        admin.approve(f"{ref}/dev")
    with pytest.raises(Exception, match="no promotion to nowhere"):
        admin.approve(f"{ref}/nowhere")
    with pytest.raises(Exception, match="is not RELEASE/ENVIRONMENT"):
        admin.approve(ref)


WINDOWED = """
---
apiVersion: conveyor.dev/v1
kind: PromotionFlow
metadata: {name: main}
spec:
  version: "1.00"
  product: shop
  triggerEnvironment: dev
  environments:
    - {name: prod, dependsOn: [dev]}
    - {name: qa, dependsOn: [dev]}
---
apiVersion: conveyor.dev/v1
kind: Environment
metadata: {name: prod, labels: {tier: prod, region: us}}
spec:
  type: production
  windows:
    - {kind: deny, schedule: "0 0 * * *", duration: 1d, manualOverride: true}
---
apiVersion: conveyor.dev/v1
kind: Environment
metadata: {name: qa, labels: {tier: qa}}
spec:
  type: non-production
  windows:
    - {kind: deny, schedule: "0 0 * * *", duration: 1d}
"""


def test_an_admin_overrides_a_window_that_allows_it_with_a_reason(
    cv: Conveyor, clock: ManualClock
) -> None:
    clock.set(datetime(2026, 1, 5, 12, tzinfo=UTC))
    apply_yaml(cv, BASE)
    apply_yaml(cv, WINDOWED)
    cv.add_user("alice", [])
    cv.grant("user:alice", Role.APPROVER, Scope())
    ref = started(cv)
    assert state(cv, ref, "prod")[0] == "waiting"
    with pytest.raises(Forbidden, match="has no manualOverride"):
        cv.override_window(f"{ref}/qa", "hotfix")
    alice = Conveyor(cv.store, cv.clock, cv.registry, Identity("alice", local=False))
    with pytest.raises(Forbidden, match="the role admin over environment prod"):
        alice.override_window(f"{ref}/prod", "hotfix")
    cv.override_window(f"{ref}/prod", "hotfix INC-7")
    cv.run_until_idle()
    assert state(cv, ref, "prod")[0] == "succeeded"
    assert state(cv, ref, "qa")[0] == "waiting"
    (event,) = [e for e in cv.audit_log(release=ref, limit=500) if e.action == "window.override"]
    assert event.after == {"reason": "hotfix INC-7"} and event.actor == "tester"
