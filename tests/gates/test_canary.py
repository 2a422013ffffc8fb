"""The `canary` gate: the pool its filters choose, its conditions, and when it looks again.

Entity health is given as the numbers the health arithmetic would produce (that arithmetic
has its own tests); the expected times here are worked out by hand in the comments.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pytest
from pydantic import ValidationError

from conveyor.gates.base import GateContext, HealthRules
from conveyor.gates.canary import CanaryGate, CanarySettings
from conveyor.health.timeline import EntityHealth, Weekends
from conveyor.model.gate import Pass, Recall, Wait
from conveyor.model.release import ReleaseInfo

NOW = datetime(2026, 1, 7, 12, 0, tzinfo=UTC)  # a Wednesday
H = timedelta(hours=1)
M = timedelta(minutes=1)
GATE = CanaryGate()
LABELS = {
    "qa": {"tier": "qa"},
    "qa-eu": {"tier": "qa", "region": "eu"},
    "staging": {"tier": "staging", "canary": "yes"},
    "prod": {"tier": "prod"},
}


def settings(**raw: Any) -> CanarySettings:
    model = GATE.Settings.model_validate(raw)
    assert isinstance(model, CanarySettings)
    return model


def entity(
    name: str,
    soak: timedelta,
    healthy: timedelta,
    unhealthy: timedelta = timedelta(0),
    *,
    current: str = "healthy",
    rules: HealthRules | None = None,
) -> EntityHealth:
    rules = rules or HealthRules()
    return EntityHealth(
        name,
        soak,
        healthy,
        unhealthy,
        healthy / soak if soak else 0.0,
        unhealthy / soak if soak else 0.0,
        bool(soak) and healthy / soak >= rules.healthy_threshold,
        bool(soak) and unhealthy / soak > rules.unhealthy_threshold,
        NOW - soak if soak else None,
        current,
    )


def ctx(
    health: dict[str, list[EntityHealth]],
    *,
    now: datetime = NOW,
    phase: Literal["entry", "verify"] = "entry",
    upstream: list[str] | None = None,
    labels: dict[str, str] | None = None,
    rules: HealthRules | None = None,
) -> GateContext:
    return GateContext(
        now=now,
        release=ReleaseInfo("shop", "1.1.0", labels=labels or {}),
        release_created_at=now - 10 * H,
        environment="prod",
        phase=phase,
        upstream=upstream if upstream is not None else ["qa"],
        environments=LABELS,
        entity_health=lambda env: {h.entity: h for h in health.get(env, [])},
        health_rules=rules or HealthRules(),
    )


def test_settings_accept_counts_and_percentages_and_refuse_the_rest() -> None:
    s = settings(promoteWhenHealthy={"entities": "50%", "soak": "2h"})
    assert s.promoteWhenHealthy is not None and s.promoteWhenHealthy.soak == 2 * H
    assert settings(promoteWhenHealthy={"entities": 3}).promoteWhenHealthy is not None
    assert settings(recallWhenUnhealthy={"entities": 1, "soak": "13d"}).recallWhenUnhealthy
    for bad in ({"entities": "150%"}, {"entities": -1}, {"entities": "half"}):
        with pytest.raises(ValidationError):
            settings(promoteWhenHealthy=bad)
    with pytest.raises(ValidationError, match="over its limit of 13d"):
        settings(promoteWhenHealthy={"entities": 1, "soak": "14d"})
    with pytest.raises(ValidationError):
        settings(minEntities=-1)
    with pytest.raises(ValidationError):
        settings(entities={"withLabel": [{"values": ["x"]}]})  # a label needs its key


@pytest.mark.parametrize(
    ("filters", "pool"),
    [
        ({"withLabel": [{"key": "tier", "values": ["qa"]}]}, ["qa", "qa-eu"]),
        ({"withLabel": [{"key": "region"}]}, ["qa-eu"]),
        ({"withoutLabel": [{"key": "region"}]}, ["prod", "qa", "staging"]),
        ({"withoutLabel": [{"key": "tier", "values": ["qa", "prod"]}]}, ["staging"]),
        ({"environments": ["qa", "staging"]}, ["qa", "staging"]),
        ({"excludeEnvironments": ["prod", "qa"]}, ["qa-eu", "staging"]),
        # Filters combine with AND.
        (
            {"withLabel": [{"key": "tier", "values": ["qa"]}], "excludeEnvironments": ["qa"]},
            ["qa-eu"],
        ),
    ],
)
def test_entity_filters_choose_environments(filters: dict[str, Any], pool: list[str]) -> None:
    # Each environment has one healthy entity: the Pass names how many were chosen.
    health = {env: [entity(f"{env}-1", 2 * H, 2 * H)] for env in LABELS}
    s = settings(entities=filters, promoteWhenHealthy={"entities": len(pool), "soak": "1h"})
    result = GATE.evaluate(s, ctx(health))
    assert result == Pass(f"canary in {', '.join(pool)}: {len(pool)} entities, conditions met")


def test_without_filters_the_pool_is_upstream_or_this_environment() -> None:
    health = {"qa": [entity("a", H, H)], "prod": [entity("b", H, H), entity("c", H, H)]}
    s = settings(minEntities=1)
    entry = GATE.evaluate(s, ctx(health, upstream=["qa"]))
    assert isinstance(entry, Wait) and entry.reason == "1 entities in qa; need more than 1"
    assert isinstance(GATE.evaluate(s, ctx(health, phase="verify")), Pass)


def test_promote_when_healthy_counts_entities_soaked_and_over_the_threshold() -> None:
    health = {
        "qa": [
            entity("a", 3 * H, 3 * H),  # soaked and healthy
            entity("b", 3 * H, 2 * H, current="neither"),  # 67% healthy: below 95%
            entity("c", 30 * M, 30 * M),  # healthy, but soaked 30m of the 1h asked
        ]
    }
    two = settings(promoteWhenHealthy={"entities": 2, "soak": "1h"})
    result = GATE.evaluate(two, ctx(health))
    assert isinstance(result, Wait)
    assert result.reason == ("1 of 3 entities in qa healthy for 1h; need 2 for 1h at 95% healthy")
    # c stays healthy and reaches 1h of soak in 30m; b cannot change without a report.
    assert result.until == NOW + 30 * M
    one = settings(promoteWhenHealthy={"entities": 1, "soak": "1h"})
    assert isinstance(GATE.evaluate(one, ctx(health)), Pass)
    # A share is rounded up: 50% of 3 is 2 entities.
    half = settings(promoteWhenHealthy={"entities": "50%", "soak": "1h"})
    assert "need 2 for 1h" in GATE.evaluate(half, ctx(health)).reason
    # 1% of 3 still needs one entity's evidence.
    assert isinstance(
        GATE.evaluate(settings(promoteWhenHealthy={"entities": "1%"}), ctx(health)), Pass
    )


def test_wait_until_the_healthy_ratio_is_reached() -> None:
    # 50m healthy of 60m soaked and healthy now: after x more minutes the ratio is
    # (50 + x) / (60 + x) >= 0.95  <=>  x >= (57 - 50) / 0.05 = 140m.
    health = {"qa": [entity("a", H, 50 * M)]}
    s = settings(promoteWhenHealthy={"entities": 1, "soak": "2h"})
    result = GATE.evaluate(s, ctx(health))
    assert isinstance(result, Wait) and result.until == NOW + 140 * M
    # The same entity not healthy now: only a new report can change the answer.
    stuck = {"qa": [entity("a", H, 50 * M, current="neither")]}
    waiting = GATE.evaluate(s, ctx(stuck))
    assert isinstance(waiting, Wait) and waiting.until is None


def test_wait_until_skips_the_weekend() -> None:
    friday = datetime(2026, 1, 9, 23, 0, tzinfo=UTC)
    health = {"qa": [entity("a", H, H)]}
    s = settings(promoteWhenHealthy={"entities": 1, "soak": "3h"})
    result = GATE.evaluate(s, ctx(health, now=friday))
    # 1h left on Friday, then Saturday and Sunday do not count: Monday 01:00.
    assert isinstance(result, Wait)
    assert result.until == datetime(2026, 1, 12, 1, 0, tzinfo=UTC)
    everyday = HealthRules(Weekends(days=frozenset()))
    result = GATE.evaluate(s, ctx(health, now=friday, rules=everyday))
    assert isinstance(result, Wait) and result.until == friday + 2 * H


def test_recall_when_unhealthy_wins_over_everything_else() -> None:
    health = {
        "qa": [
            entity("a", 2 * H, H, 12 * M, current="unhealthy"),  # 10% unhealthy > 5%
            entity("b", 2 * H, 2 * H),
        ]
    }
    s = settings(
        promoteWhenHealthy={"entities": 1, "soak": "1h"},
        recallWhenUnhealthy={"entities": 1, "soak": "1h"},
    )
    result = GATE.evaluate(s, ctx(health))
    assert isinstance(result, Recall)
    assert result.reason.startswith("1 of 2 entities in qa unhealthy for 1h or more (qa/a;")
    # Two unhealthy entities asked for: one is not enough, and b keeps promotion possible.
    two = settings(recallWhenUnhealthy={"entities": 2, "soak": "1h"})
    assert GATE.evaluate(two, ctx(health)) == Pass("canary in qa: 2 entities, conditions met")


def test_a_pass_says_when_the_recall_condition_can_turn_it() -> None:
    # a is unhealthy now with 20m soaked: the 45m recall soak is reached in 25m.
    health = {
        "qa": [
            entity("a", 20 * M, timedelta(0), 20 * M, current="unhealthy"),
            entity("b", 2 * H, 2 * H),
        ]
    }
    s = settings(
        promoteWhenHealthy={"entities": 1, "soak": "1h"},
        recallWhenUnhealthy={"entities": 1, "soak": "45m"},
    )
    result = GATE.evaluate(s, ctx(health))
    assert isinstance(result, Pass) and result.until == NOW + 25 * M


def test_recall_waits_for_the_soak_and_says_when() -> None:
    # Unhealthy from the start and still: 20m soaked of the 45m the condition asks.
    health = {"qa": [entity("a", 20 * M, timedelta(0), 20 * M, current="unhealthy")]}
    s = settings(
        promoteWhenHealthy={"entities": 1, "soak": "1h"},
        recallWhenUnhealthy={"entities": 1, "soak": "45m"},
    )
    result = GATE.evaluate(s, ctx(health))
    assert isinstance(result, Wait) and result.until == NOW + 25 * M
    later = {"qa": [entity("a", 45 * M, timedelta(0), 45 * M, current="unhealthy")]}
    assert isinstance(GATE.evaluate(s, ctx(later, now=NOW + 25 * M)), Recall)


def test_min_entities_and_release_label() -> None:
    health = {"qa": [entity("a", H, H), entity("b", H, H)]}
    s = settings(minEntities=2, releaseLabel={"key": "qa", "values": ["passed"]})
    result = GATE.evaluate(s, ctx(health))
    assert isinstance(result, Wait) and result.until is None
    assert result.reason == (
        "2 entities in qa; need more than 2; release label qa with one of passed not set"
    )
    ok = settings(minEntities=1, releaseLabel={"key": "qa"})
    assert isinstance(GATE.evaluate(ok, ctx(health, labels={"qa": "anything"})), Pass)
    wrong = GATE.evaluate(s, ctx(health, labels={"qa": "failed"}))
    assert "release label qa with one of passed not set" in wrong.reason


def test_an_empty_pool_never_promotes_on_a_share() -> None:
    s = settings(entities={"environments": ["nowhere"]}, promoteWhenHealthy={"entities": "50%"})
    result = GATE.evaluate(s, ctx({}))
    assert isinstance(result, Wait)
    assert result.reason.startswith("0 of 0 entities in no environment healthy for 0s; need 1")
