"""Drawing a flow: text trees, Mermaid and DOT agree with the flow's dependsOn."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conveyor.model.definitions import FlowSpec
from conveyor.model.flowdraw import draw

SEED_EDGES = {("dev", "qa"), ("qa", "prod"), ("qa", "prod-eu"), ("qa", "prod-asia")}


def flow(*nodes: dict[str, Any], trigger: str = "dev") -> FlowSpec:
    return FlowSpec.model_validate(
        {
            "version": "1.00",
            "product": "demo-trioapp",
            "triggerEnvironment": trigger,
            "environments": [{"name": trigger}, *nodes],
        }
    )


def parallel(*extra: dict[str, Any]) -> FlowSpec:
    return flow(
        {"name": "qa", "dependsOn": ["dev"]},
        {"name": "prod", "dependsOn": ["qa"]},
        {"name": "prod-eu", "dependsOn": ["qa"]},
        {"name": "prod-asia", "dependsOn": ["qa"]},
        *extra,
    )


def mermaid_edges(out: str) -> set[tuple[str, str]]:
    return {(m[1], m[2]) for m in re.finditer(r"^    (\w+) --> (\w+)$", out, re.MULTILINE)}


def dot_edges(out: str) -> set[tuple[str, str]]:
    return {(m[1], m[2]) for m in re.finditer(r'^  "([^"]+)" -> "([^"]+)";$', out, re.MULTILINE)}


def text_names(out: str) -> list[str]:
    """The node name on each line below the header, tree characters stripped."""
    return [re.sub(r"^[ │├└─>]*", "", line).split()[0] for line in out.splitlines()[1:]]


def test_text_draws_the_parallel_seed_as_a_tree() -> None:
    out = draw(parallel(), "text", name="multi-env-parallel-promotion")
    assert out == (
        "multi-env-parallel-promotion v1.00 (product demo-trioapp)\n"
        "dev  (trigger)\n"
        " └─> qa\n"
        "      ├─> prod\n"
        "      ├─> prod-eu\n"
        "      └─> prod-asia\n"
    )


def test_mermaid_draws_each_dependency_as_one_edge() -> None:
    out = draw(parallel(), "mermaid")
    lines = out.splitlines()
    assert lines[0] == "flowchart LR"
    assert mermaid_edges(out) == {(a, b.replace("-", "_")) for a, b in SEED_EDGES}
    assert len([ln for ln in lines if "-->" in ln]) == len(SEED_EDGES)
    assert '    dev(["dev"])' in lines  # the trigger is the stadium shape
    assert '    prod_eu["prod-eu"]' in lines


def test_dot_draws_each_dependency_as_one_edge() -> None:
    out = draw(parallel(), "dot", name="multi-env-parallel-promotion")
    lines = out.splitlines()
    assert lines[:2] == ['digraph "multi-env-parallel-promotion" {', "  rankdir=LR;"]
    assert lines[-1] == "}"
    assert dot_edges(out) == SEED_EDGES
    assert len([ln for ln in lines if "->" in ln]) == len(SEED_EDGES)
    declared = {m[1] for m in re.finditer(r'^  "([^"]+)"( \[.*\])?;$', out, re.MULTILINE)}
    assert declared == {"dev", "qa", "prod", "prod-eu", "prod-asia"}
    assert '  "dev" [shape=oval];' in lines


def test_fan_in_node_is_drawn_once_with_its_parents_noted() -> None:
    spec = parallel({"name": "final", "dependsOn": ["prod", "prod-eu"]})
    out = draw(spec, "text")
    assert text_names(out) == ["dev", "qa", "prod", "prod-eu", "final", "prod-asia"]
    assert "      │    └─> final  (after prod, prod-eu)\n" in out
    assert mermaid_edges(draw(spec, "mermaid")) >= {("prod", "final"), ("prod_eu", "final")}
    assert dot_edges(draw(spec, "dot")) == SEED_EDGES | {("prod", "final"), ("prod-eu", "final")}


def test_fan_in_hangs_under_the_parent_drawn_last() -> None:
    # eu-gate is shallower than prod but drawn after qa's whole subtree: final must follow it.
    spec = parallel(
        {"name": "eu-gate", "dependsOn": ["dev"]},
        {"name": "final", "dependsOn": ["prod", "eu-gate"]},
    )
    out = draw(spec, "text")
    assert out.endswith(" └─> eu-gate\n      └─> final  (after prod, eu-gate)\n")
    assert text_names(out).count("final") == 1


def test_channel_node_shows_its_selector() -> None:
    edge = {"name": "edge", "channel": {"labels": {"tier": "edge"}}, "dependsOn": ["prod"]}
    spec = parallel(edge)
    assert "└─> edge  (channel tier=edge)\n" in draw(spec, "text")
    assert '    edge{{"edge (tier=edge)"}}' in draw(spec, "mermaid").splitlines()
    assert '  "edge" [shape=hexagon, label="edge\\ntier=edge"];' in draw(spec, "dot").splitlines()


def test_states_annotate_nodes_in_every_format() -> None:
    states = {"dev": "succeeded", "prod": "succeeded", "qa": "running", "prod-eu": "odd"}
    text = draw(parallel(), "text", states=states)
    assert "dev [succeeded]  (trigger)\n" in text
    assert " └─> qa [running]\n" in text
    assert "├─> prod [succeeded]\n" in text
    assert "prod-asia [" not in text

    mermaid = draw(parallel(), "mermaid", states=states).splitlines()
    assert "    class dev,prod succeeded" in mermaid
    assert "    class qa running" in mermaid
    assert "    class prod_eu odd" in mermaid
    assert "    classDef succeeded fill:#c8e6c9" in mermaid
    assert "    classDef running fill:#bbdefb" in mermaid
    assert not any("prod_asia" in ln for ln in mermaid if ln.startswith("    class "))

    dot = draw(parallel(), "dot", states=states).splitlines()
    assert '  "prod" [style=filled, fillcolor="#c8e6c9"];' in dot
    assert '  "qa" [style=filled, fillcolor="#bbdefb"];' in dot
    assert '  "prod-asia";' in dot


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^unknown format 'svg': use text, mermaid or dot$"):
        draw(parallel(), "svg")


def test_cycle_is_refused() -> None:
    spec = flow({"name": "a", "dependsOn": ["dev", "b"]}, {"name": "b", "dependsOn": ["a"]})
    with pytest.raises(ValueError, match="cycle"):
        draw(spec, "text")


def test_mermaid_ids_stay_distinct_and_avoid_keywords() -> None:
    spec = flow(
        {"name": "a-b", "dependsOn": ["dev"]},
        {"name": "a.b", "dependsOn": ["dev"]},
        {"name": "end", "dependsOn": ["a.b"]},
    )
    out = draw(spec, "mermaid")
    assert mermaid_edges(out) == {("dev", "a_b"), ("dev", "a_b_2"), ("a_b_2", "end_2")}


def test_order_follows_the_spec() -> None:
    spec = flow(
        {"name": "qa", "dependsOn": ["dev"]},
        {"name": "prod-asia", "dependsOn": ["qa"]},
        {"name": "prod", "dependsOn": ["qa"]},
    )
    assert text_names(draw(spec, "text")) == ["dev", "qa", "prod-asia", "prod"]


def test_unreachable_and_unknown_parents_are_noted_not_dropped() -> None:
    spec = flow({"name": "qa", "dependsOn": ["dev", "ghost"]}, {"name": "lost"})
    out = draw(spec, "text")
    assert " └─> qa  (after dev, ghost; not in the flow: ghost)\n" in out
    assert out.endswith("\nlost  (no dependsOn: never reached)\n")
    assert dot_edges(draw(spec, "dot")) == {("dev", "qa")}


@st.composite
def dags(draw_: st.DrawFn) -> list[dict[str, Any]]:
    size = draw_(st.integers(1, 8))
    nodes: list[dict[str, Any]] = []
    for i in range(size):
        earlier = ["dev"] + [f"n{j}" for j in range(i)]
        parents = draw_(st.lists(st.sampled_from(earlier), min_size=1, max_size=3, unique=True))
        nodes.append({"name": f"n{i}", "dependsOn": parents})
    return nodes


@settings(max_examples=60, deadline=None)
@given(dags())
def test_any_dag_shows_each_node_once_and_every_edge(nodes: list[dict[str, Any]]) -> None:
    spec = flow(*nodes)
    expected = {(p, n["name"]) for n in nodes for p in n["dependsOn"]}
    names = text_names(draw(spec, "text"))
    assert sorted(names) == sorted(["dev"] + [n["name"] for n in nodes])
    assert dot_edges(draw(spec, "dot")) == expected
    assert mermaid_edges(draw(spec, "mermaid")) == expected
    # Every parent is drawn above its child, so the tree reads top-down.
    for parent, child in expected:
        assert names.index(parent) < names.index(child)
