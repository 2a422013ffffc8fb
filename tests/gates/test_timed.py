"""The `timed` gate: where the soak counts from, when it passes, and its limits."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pytest
from pydantic import ValidationError

from conveyor.gates.base import GateContext
from conveyor.gates.timed import MAX_SOAK, TimedGate, TimedSettings
from conveyor.model.gate import Fail, Pass, Wait
from conveyor.model.release import ReleaseInfo

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
CREATED = T0 - timedelta(days=1)

GATE = TimedGate()


def settings(**raw: Any) -> TimedSettings:
    model = GATE.Settings.model_validate(raw)
    assert isinstance(model, TimedSettings)
    return model


def ctx(
    now: datetime,
    *,
    environment: str = "prod",
    phase: Literal["entry", "verify"] = "entry",
    upstream: list[str] | None = None,
    deployed: Mapping[str, datetime] | None = None,
) -> GateContext:
    where = dict(deployed or {})
    return GateContext(
        now=now,
        release=ReleaseInfo("shop", "1.0.0"),
        release_created_at=CREATED,
        environment=environment,
        phase=phase,
        upstream=list(upstream or []),
        deployed_at=lambda env: where.get(env),
    )


def test_kind_and_settings_model() -> None:
    assert GATE.kind == "timed"
    s = settings(duration="2h", **{"in": "qa"})
    assert s.duration == timedelta(hours=2)
    assert s.in_ == "qa"
    assert settings(duration="90m").in_ is None


def test_in_counts_from_deployment_to_the_named_environment() -> None:
    s = settings(duration="2h", **{"in": "qa"})
    # `in` wins over the upstream environments and over this environment.
    deployed = {"qa": T0, "dev": T0 - timedelta(days=3), "prod": T0 - timedelta(days=3)}
    result = GATE.evaluate(s, ctx(T0 + timedelta(minutes=48), upstream=["dev"], deployed=deployed))
    assert isinstance(result, Wait)
    assert result.until == T0 + timedelta(hours=2)
    assert "qa" in result.reason and "2h" in result.reason

    passed = GATE.evaluate(s, ctx(T0 + timedelta(hours=3), upstream=["dev"], deployed=deployed))
    assert isinstance(passed, Pass)
    assert "qa" in passed.reason


def test_in_applies_to_a_verification_gate_too() -> None:
    s = settings(duration="1h", **{"in": "qa"})
    c = ctx(
        T0,
        phase="verify",
        environment="prod",
        deployed={"qa": T0 - timedelta(minutes=10), "prod": T0 - timedelta(days=1)},
    )
    result = GATE.evaluate(s, c)
    assert isinstance(result, Wait)
    assert result.until == T0 + timedelta(minutes=50)


def test_entry_without_in_counts_from_the_upstream_environments() -> None:
    s = settings(duration="1h")
    deployed = {"prod": T0, "prod-eu": T0 + timedelta(minutes=30), "edge": T0 - timedelta(days=9)}
    # The latest upstream deployment counts: every parent must have soaked.
    c = ctx(
        T0 + timedelta(minutes=45),
        environment="edge",
        upstream=["prod", "prod-eu"],
        deployed=deployed,
    )
    result = GATE.evaluate(s, c)
    assert isinstance(result, Wait)
    assert result.until == T0 + timedelta(minutes=90)
    assert "prod" in result.reason and "prod-eu" in result.reason

    later = ctx(
        T0 + timedelta(minutes=90),
        environment="edge",
        upstream=["prod", "prod-eu"],
        deployed=deployed,
    )
    assert isinstance(GATE.evaluate(s, later), Pass)


def test_entry_without_in_waits_for_every_upstream_deployment() -> None:
    s = settings(duration="1h")
    c = ctx(
        T0 + timedelta(days=5),
        environment="edge",
        upstream=["prod", "prod-eu"],
        deployed={"prod": T0},
    )
    result = GATE.evaluate(s, c)
    assert isinstance(result, Wait)
    assert result.until is None


def test_verify_without_in_counts_from_this_environment() -> None:
    s = settings(duration="30m")
    deployed = {"qa": T0 - timedelta(days=2), "prod": T0}

    def at(now: datetime) -> GateContext:
        return ctx(now, phase="verify", environment="prod", upstream=["qa"], deployed=deployed)

    result = GATE.evaluate(s, at(T0 + timedelta(minutes=10)))
    assert isinstance(result, Wait)
    assert result.until == T0 + timedelta(minutes=30)
    assert "prod" in result.reason

    assert isinstance(GATE.evaluate(s, at(T0 + timedelta(minutes=30))), Pass)


def test_root_entry_counts_from_release_creation() -> None:
    s = settings(duration="1d")
    # The trigger environment has no upstream: the soak counts from the release's creation.
    early = GATE.evaluate(s, ctx(CREATED + timedelta(hours=20), environment="dev"))
    assert isinstance(early, Wait)
    assert early.until == CREATED + timedelta(days=1)
    assert isinstance(GATE.evaluate(s, ctx(CREATED + timedelta(days=1), environment="dev")), Pass)


@pytest.mark.parametrize(
    ("raw", "phase", "upstream"),
    [
        ({"duration": "1h", "in": "qa"}, "entry", ["dev"]),
        ({"duration": "1h", "in": "qa"}, "verify", ["dev"]),
        ({"duration": "1h"}, "entry", ["qa"]),
        ({"duration": "1h"}, "verify", ["qa"]),
    ],
)
def test_not_yet_deployed_waits_without_a_deadline(
    raw: dict[str, str], phase: Literal["entry", "verify"], upstream: list[str]
) -> None:
    result = GATE.evaluate(
        settings(**raw), ctx(T0 + timedelta(days=30), phase=phase, upstream=upstream, deployed={})
    )
    assert isinstance(result, Wait)
    assert result.until is None
    assert "not deployed" in result.reason
    assert not isinstance(result, Fail)


def test_boundary_exactly_at_until_passes() -> None:
    s = settings(duration="2h", **{"in": "qa"})
    deployed = {"qa": T0}
    before = GATE.evaluate(
        s, ctx(T0 + timedelta(hours=2) - timedelta(microseconds=1), deployed=deployed)
    )
    assert isinstance(before, Wait)
    assert before.until == T0 + timedelta(hours=2)
    assert isinstance(GATE.evaluate(s, ctx(T0 + timedelta(hours=2), deployed=deployed)), Pass)


def test_zero_duration_passes_once_deployed() -> None:
    s = settings(duration="0s", **{"in": "qa"})
    assert isinstance(GATE.evaluate(s, ctx(T0, deployed={"qa": T0})), Pass)


def test_31_days_is_allowed() -> None:
    assert settings(duration="31d").duration == MAX_SOAK == timedelta(days=31)
    s = settings(duration="31d", **{"in": "qa"})
    result = GATE.evaluate(s, ctx(T0, deployed={"qa": T0}))
    assert isinstance(result, Wait)
    assert result.until == T0 + timedelta(days=31)


@pytest.mark.parametrize("duration", ["31d1s", "32d", "5w"])
def test_over_31_days_is_refused(duration: str) -> None:
    with pytest.raises(ValidationError, match="over its limit"):
        settings(duration=duration)


@pytest.mark.parametrize("raw", [{}, {"duration": "soon"}, {"duration": "1h", "extra": 1}])
def test_bad_settings_are_refused(raw: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        settings(**raw)
