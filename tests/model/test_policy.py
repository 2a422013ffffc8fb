"""Policy selection and merging: priority order, inline override, provenance."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.model.definitions import PolicyBody, PolicySpec
from conveyor.model.policy import Target, matches, merge

PROD_EU = Target("shop", "prod-eu", "production", {"tier": "prod", "region": "eu"})
QA = Target("shop", "qa", "non-production", {"tier": "qa"})
OTHER_PRODUCT = Target("cart", "prod-eu", "production", {"tier": "prod", "region": "eu"})


def policy(priority: int = 0, selector: dict[str, Any] | None = None, **fields: Any) -> PolicySpec:
    return PolicySpec.model_validate({"priority": priority, "selector": selector or {}, **fields})


def gate(duration: str) -> list[dict[str, Any]]:
    return [{"timed": {"duration": duration}}]


def steps(name: str) -> dict[str, Any]:
    return {
        "steps": [
            {
                "name": name,
                "tasks": [{"name": "t", "uses": "run", "with": {"args": ["echo", name]}}],
            }
        ]
    }


# --- selectors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "hits"),
    [
        ({}, {"prod-eu", "qa", "cart"}),
        ({"products": ["shop"]}, {"prod-eu", "qa"}),
        ({"products": ["cart", "shop"]}, {"prod-eu", "qa", "cart"}),
        ({"products": []}, set()),
        ({"environments": {}}, {"prod-eu", "qa", "cart"}),
        ({"environments": {"names": ["qa"]}}, {"qa"}),
        ({"environments": {"names": ["prod-eu", "qa"]}, "products": ["shop"]}, {"prod-eu", "qa"}),
        ({"environments": {"types": ["production"]}}, {"prod-eu", "cart"}),
        ({"environments": {"types": ["non-production"]}}, {"qa"}),
        ({"environments": {"labels": {"tier": "prod"}}}, {"prod-eu", "cart"}),
        ({"environments": {"labels": {"tier": "prod", "region": "us"}}}, set()),
        ({"environments": {"labels": {"region": "eu"}}, "products": ["cart"]}, {"cart"}),
        ({"environments": {"labels": {}}}, {"prod-eu", "qa", "cart"}),
        ({"environments": {"names": ["qa"], "types": ["production"]}}, set()),
        (
            {
                "environments": {"types": ["production"], "labels": {"region": "eu"}},
                "products": ["shop"],
            },
            {"prod-eu"},
        ),
    ],
)
def test_matches(selector: dict[str, Any], hits: set[str]) -> None:
    spec = policy(selector=selector)
    targets = {"prod-eu": PROD_EU, "qa": QA, "cart": OTHER_PRODUCT}
    assert {k for k, t in targets.items() if matches(spec, t)} == hits


def test_label_key_missing_on_the_environment_does_not_match() -> None:
    spec = policy(selector={"environments": {"labels": {"region": "eu"}}})
    assert not matches(spec, QA)


# --- merging -------------------------------------------------------------------------


def test_no_policy_gives_an_empty_body() -> None:
    merged = merge({}, PROD_EU)
    assert merged.body == PolicyBody()
    assert merged.sources == {}
    assert merged.applied == []
    assert merged.hooks.onStart == [] and merged.hooks.onFail == []


def test_higher_priority_wins_per_field_whatever_the_insertion_order() -> None:
    base = policy(0, gates=gate("1h"), workflow=steps("deploy"))
    prod = policy(10, {"environments": {"types": ["production"]}}, gates=gate("2d"))
    for policies in ({"base": base, "prod": prod}, {"prod": prod, "base": base}):
        merged = merge(policies, PROD_EU)
        assert merged.body.gates == gate("2d")
        # A field the higher policy leaves out is inherited from the lower one.
        assert merged.body.workflow is not None
        assert merged.body.workflow.steps[0].name == "deploy"
        assert merged.sources == {
            "gates": "PromotionPolicy/prod",
            "workflow": "PromotionPolicy/base",
        }
        assert merged.applied == ["PromotionPolicy/base", "PromotionPolicy/prod"]


def test_negative_priority_loses() -> None:
    merged = merge({"low": policy(-5, gates=gate("3h")), "mid": policy(0, gates=gate("1h"))}, QA)
    assert merged.body.gates == gate("1h")
    assert merged.applied == ["PromotionPolicy/low", "PromotionPolicy/mid"]


def test_equal_priority_is_settled_by_name() -> None:
    policies = {"zeta": policy(5, gates=gate("9h")), "alpha": policy(5, gates=gate("1h"))}
    merged = merge(policies, QA)
    assert merged.applied == ["PromotionPolicy/alpha", "PromotionPolicy/zeta"]
    assert merged.body.gates == gate("9h")
    assert merged.sources["gates"] == "PromotionPolicy/zeta"


def test_policies_that_do_not_match_are_ignored() -> None:
    policies = {
        "prod-only": policy(100, {"environments": {"types": ["production"]}}, gates=gate("2d")),
        "everyone": policy(0, gates=gate("1h")),
        "cart": policy(50, {"products": ["cart"]}, gates=gate("5h")),
    }
    merged = merge(policies, QA)
    assert merged.body.gates == gate("1h")
    assert merged.applied == ["PromotionPolicy/everyone"]
    assert merge(policies, OTHER_PRODUCT).body.gates == gate("2d")


def test_inline_policy_wins_over_any_priority() -> None:
    policies = {"strict": policy(10_000, gates=gate("2d"), verify=[{"timed": {"duration": "1h"}}])}
    inline = PolicyBody.model_validate({"gates": gate("5m")})
    merged = merge(policies, PROD_EU, inline, "PromotionFlow/main node prod-eu")
    assert merged.body.gates == gate("5m")
    assert merged.body.verify == [{"timed": {"duration": "1h"}}]
    assert merged.sources == {
        "gates": "PromotionFlow/main node prod-eu",
        "verify": "PromotionPolicy/strict",
    }
    assert merged.applied == ["PromotionPolicy/strict", "PromotionFlow/main node prod-eu"]


def test_inline_source_has_a_default_name() -> None:
    merged = merge({}, QA, PolicyBody.model_validate({"gates": []}))
    assert merged.sources == {"gates": "flow node"}
    assert merged.applied == ["flow node"]


def test_an_explicit_empty_list_overrides_an_inherited_one() -> None:
    policies = {"base": policy(0, gates=gate("1h"))}
    merged = merge(policies, QA, PolicyBody.model_validate({"gates": []}))
    assert merged.body.gates == []
    assert merged.sources["gates"] == "flow node"


def test_fields_are_replaced_whole_not_concatenated() -> None:
    policies = {
        "a": policy(1, workflow=steps("build")),
        "b": policy(2, workflow=steps("deploy")),
    }
    merged = merge(policies, QA)
    assert merged.body.workflow is not None
    assert [s.name for s in merged.body.workflow.steps] == ["deploy"]


def test_hooks_come_from_one_layer() -> None:
    task = {"name": "page", "uses": "run", "with": {"args": ["page"]}}
    policies = {
        "a": policy(1, hooks={"onFail": [task]}),
        "b": policy(2, hooks={"onStart": [task]}),
    }
    merged = merge(policies, QA)
    assert [t.name for t in merged.hooks.onStart] == ["page"]
    assert merged.hooks.onFail == []
    assert merged.sources == {"hooks": "PromotionPolicy/b"}


def test_merge_does_not_change_its_inputs() -> None:
    base = policy(0, gates=gate("1h"))
    inline = PolicyBody.model_validate({"gates": gate("5m")})
    before = (base.model_dump(), inline.model_dump())
    merge({"base": base}, QA, inline)
    assert (base.model_dump(), inline.model_dump()) == before
