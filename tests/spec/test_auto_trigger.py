"""A release follows one flow: two flows that start by themselves for one product are refused."""

from __future__ import annotations

import pytest

from conveyor.engine.service import Conveyor
from conveyor.errors import DefinitionError
from tests.conftest import BASE, DIGEST, apply_yaml


def flow(name: str, auto: bool) -> str:
    return f"""
---
apiVersion: conveyor.dev/v1
kind: PromotionFlow
metadata: {{name: {name}}}
spec:
  version: "1.00"
  product: shop
  triggerEnvironment: dev
  autoTrigger: {str(auto).lower()}
"""


def test_second_auto_trigger_flow_is_refused_and_nothing_changes(cv: Conveyor) -> None:
    apply_yaml(cv, BASE + flow("one", True))
    with pytest.raises(DefinitionError) as err:
        apply_yaml(cv, flow("two", True), "two.yaml")
    (problem,) = err.value.problems
    assert problem.file == "two.yaml" and problem.field == "spec.autoTrigger"
    assert "one, two" in problem.message
    assert [f.name for f in cv.get("PromotionFlow")] == ["one"]


def test_auto_trigger_starts_the_one_flow(cv: Conveyor) -> None:
    apply_yaml(cv, BASE + flow("one", True) + flow("manual", False))
    row = cv.create_release("shop", "1.0.0", {"web": f"registry.local/web@{DIGEST}"})
    assert row.flow == "one" and row.status == "running"
