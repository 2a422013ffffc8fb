"""The `releaseLabel` gate: a label present, absent, or with one of some values."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from conveyor.gates.base import GateContext
from conveyor.gates.release_label import ReleaseLabelGate, ReleaseLabelSettings
from conveyor.model.gate import Pass, Wait
from conveyor.model.release import ReleaseInfo

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
GATE = ReleaseLabelGate()


def settings(**raw: Any) -> ReleaseLabelSettings:
    model = GATE.Settings.model_validate(raw)
    assert isinstance(model, ReleaseLabelSettings)
    return model


def ctx(labels: dict[str, str]) -> GateContext:
    return GateContext(
        now=T0,
        release=ReleaseInfo("shop", "1.0.0", {}, labels),
        release_created_at=T0,
        environment="prod",
        phase="entry",
        upstream=["qa"],
    )


def test_kind() -> None:
    assert GATE.kind == "releaseLabel"


def test_present_label_passes() -> None:
    result = GATE.evaluate(settings(key="qa-signoff"), ctx({"qa-signoff": "anything"}))
    assert isinstance(result, Pass)
    assert "qa-signoff=anything" in result.reason


def test_absent_label_waits_without_deadline() -> None:
    result = GATE.evaluate(settings(key="qa-signoff"), ctx({"other": "passed"}))
    assert isinstance(result, Wait)
    assert result.until is None
    assert "qa-signoff" in result.reason and "not set" in result.reason


def test_absent_label_with_values_says_what_is_wanted() -> None:
    result = GATE.evaluate(settings(key="qa-signoff", values=["passed", "waived"]), ctx({}))
    assert isinstance(result, Wait)
    assert result.until is None
    assert "passed" in result.reason and "waived" in result.reason


@pytest.mark.parametrize("value", ["passed", "waived"])
def test_value_in_the_list_passes(value: str) -> None:
    s = settings(key="qa-signoff", values=["passed", "waived"])
    assert isinstance(GATE.evaluate(s, ctx({"qa-signoff": value})), Pass)


def test_value_not_in_the_list_waits() -> None:
    s = settings(key="qa-signoff", values=["passed"])
    result = GATE.evaluate(s, ctx({"qa-signoff": "failed"}))
    assert isinstance(result, Wait)
    assert result.until is None
    assert "qa-signoff=failed" in result.reason and "passed" in result.reason


def test_value_match_is_exact() -> None:
    s = settings(key="qa-signoff", values=["passed"])
    for wrong in ["Passed", "passed ", "pass", ""]:
        assert isinstance(GATE.evaluate(s, ctx({"qa-signoff": wrong})), Wait), wrong


def test_empty_value_counts_as_present_without_values() -> None:
    assert isinstance(GATE.evaluate(settings(key="qa-signoff"), ctx({"qa-signoff": ""})), Pass)


def test_key_must_match_exactly() -> None:
    s = settings(key="qa-signoff")
    assert isinstance(GATE.evaluate(s, ctx({"QA-signoff": "passed"})), Wait)


@pytest.mark.parametrize("raw", [{}, {"key": ""}, {"key": "a", "value": "b"}])
def test_bad_settings_are_refused(raw: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        settings(**raw)
