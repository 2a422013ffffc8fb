"""The flow DAG: order, levels, ancestors, channels and every structural finding."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conveyor.model.definitions import FlowSpec
from conveyor.model.flow import FlowGraph, Node, build_graph, find_cycle

ENVS = ["dev", "qa", "staging", "prod", "prod-eu", "prod-asia"]


def spec(*nodes: dict[str, Any], root: str = "dev") -> FlowSpec:
    return FlowSpec.model_validate(
        {"version": "1", "product": "shop", "triggerEnvironment": root, "environments": list(nodes)}
    )


def graph_of(*nodes: dict[str, Any], root: str = "dev") -> FlowGraph:
    graph, findings = build_graph(spec(*nodes, root=root), ENVS)
    assert findings == []
    return graph


def assert_topological(graph: FlowGraph, order: list[str]) -> None:
    assert sorted(order) == sorted(graph.nodes)
    for n in order:
        for p in graph.nodes[n].parents:
            assert order.index(p) < order.index(n), (p, n, order)


DIAMOND = (
    {"name": "qa", "dependsOn": ["dev"]},
    {"name": "staging", "dependsOn": ["dev"]},
    {"name": "prod", "dependsOn": ["qa", "staging"]},
    {"name": "prod-eu", "dependsOn": ["prod"]},
)


# --- shape of a sound graph ----------------------------------------------------------


def test_linear_flow() -> None:
    g = graph_of({"name": "qa", "dependsOn": ["dev"]}, {"name": "prod", "dependsOn": ["qa"]})
    assert g.root == "dev"
    assert g.order() == ["dev", "qa", "prod"]
    assert g.levels() == [["dev"], ["qa"], ["prod"]]
    assert g.children("dev") == ["qa"]
    assert g.children("prod") == []
    assert g.nodes["dev"].parents == ()


def test_order_lists_parents_first_even_when_declared_later() -> None:
    g = graph_of({"name": "prod", "dependsOn": ["qa"]}, {"name": "qa", "dependsOn": ["dev"]})
    assert g.order() == ["dev", "qa", "prod"]


def test_diamond() -> None:
    g = graph_of(*DIAMOND)
    assert_topological(g, g.order())
    assert g.levels() == [["dev"], ["qa", "staging"], ["prod"], ["prod-eu"]]
    assert g.ancestors("prod-eu") == {"dev", "qa", "staging", "prod"}
    assert g.ancestors("prod") == {"dev", "qa", "staging"}
    assert g.ancestors("dev") == set()
    assert sorted(g.children("dev")) == ["qa", "staging"]


def test_level_is_the_longest_path_from_the_root() -> None:
    # prod depends on dev directly and on qa: it runs after qa, at level 2.
    g = graph_of({"name": "qa", "dependsOn": ["dev"]}, {"name": "prod", "dependsOn": ["dev", "qa"]})
    assert g.levels() == [["dev"], ["qa"], ["prod"]]


def test_repeated_parent_is_kept_once() -> None:
    g = graph_of({"name": "qa", "dependsOn": ["dev", "dev"]})
    assert g.nodes["qa"].parents == ("dev",)


def test_root_listed_as_a_node_carries_its_policy() -> None:
    g = graph_of(
        {"name": "dev", "policy": {"gates": [{"timed": {"duration": "1h"}}]}},
        {"name": "qa", "dependsOn": ["dev"]},
    )
    assert g.nodes["dev"].parents == ()
    assert g.nodes["dev"].policy is not None
    assert g.nodes["dev"].policy.gates == [{"timed": {"duration": "1h"}}]
    assert g.order() == ["dev", "qa"]


def test_nodes_keep_their_inline_policy() -> None:
    g = graph_of({"name": "qa", "dependsOn": ["dev"], "policy": {"verify": []}})
    assert g.nodes["qa"].policy is not None
    assert g.nodes["qa"].policy.verify == []
    assert g.nodes["dev"].policy is None


@st.composite
def dags(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Random DAGs over n0..nk, each node depending on at least one earlier node."""
    count = draw(st.integers(1, 8))
    names = ["root"] + [f"n{i}" for i in range(count)]
    nodes = []
    for i in range(1, len(names)):
        parents = draw(st.lists(st.sampled_from(names[:i]), min_size=1, max_size=3))
        nodes.append({"name": names[i], "dependsOn": parents})
    return draw(st.permutations(nodes))


@given(dags())
def test_order_and_levels_hold_for_any_dag(nodes: list[dict[str, Any]]) -> None:
    graph, findings = build_graph(spec(*nodes, root="root"))
    assert findings == []
    order = graph.order()
    assert_topological(graph, order)
    levels = graph.levels()
    assert sorted(n for level in levels for n in level) == sorted(graph.nodes)
    assert levels[0] == ["root"]
    depth = {n: i for i, level in enumerate(levels) for n in level}
    for n, node in graph.nodes.items():
        if node.parents:
            assert depth[n] == 1 + max(depth[p] for p in node.parents)
        ancestors = graph.ancestors(n)
        assert set(node.parents) <= ancestors
        assert n not in ancestors
        if n != "root":
            assert "root" in ancestors
    assert find_cycle(graph) == []


# --- channels ------------------------------------------------------------------------


LABELS = {
    "dev": {"tier": "dev"},
    "prod": {"tier": "prod", "region": "us"},
    "prod-eu": {"tier": "prod", "region": "eu"},
    "prod-asia": {"tier": "prod", "region": "asia"},
}


def test_channel_selects_environments_by_labels() -> None:
    g, findings = build_graph(
        spec(
            {"name": "prod-wave", "channel": {"labels": {"tier": "prod"}}, "dependsOn": ["dev"]},
            {
                "name": "eu",
                "channel": {"labels": {"tier": "prod", "region": "eu"}},
                "dependsOn": ["prod-wave"],
            },
            {"name": "moon", "channel": {"labels": {"region": "moon"}}, "dependsOn": ["dev"]},
        ),
        ENVS,
    )
    # A channel is named freely: its name need not be an environment.
    assert findings == []
    assert g.nodes["prod-wave"].environments(LABELS) == ["prod", "prod-asia", "prod-eu"]
    assert g.nodes["eu"].environments(LABELS) == ["prod-eu"]
    assert g.nodes["moon"].environments(LABELS) == []
    assert g.nodes["dev"].environments(LABELS) == ["dev"]


def test_plain_node_is_its_own_environment() -> None:
    assert Node("qa", ("dev",)).environments(LABELS) == ["qa"]


# --- findings ------------------------------------------------------------------------


def findings_of(
    *nodes: dict[str, Any], root: str = "dev", known: list[str] | None = ENVS
) -> list[tuple[tuple[str | int, ...], str]]:
    return build_graph(spec(*nodes, root=root), known)[1]


def test_unknown_environment_name() -> None:
    (finding,) = findings_of(
        {"name": "qa", "dependsOn": ["dev"]}, {"name": "uat", "dependsOn": ["qa"]}
    )
    assert finding[0] == ("spec", "environments", 1, "name")
    assert "uat" in finding[1]


def test_unknown_names_are_not_checked_without_known_environments() -> None:
    assert findings_of({"name": "uat", "dependsOn": ["devx"]}, root="devx", known=None) == []


def test_unknown_trigger_environment() -> None:
    findings = findings_of({"name": "qa", "dependsOn": ["devx"]}, root="devx")
    assert [f[0] for f in findings] == [("spec", "triggerEnvironment")]
    assert "devx" in findings[0][1]


def test_depends_on_something_that_is_not_a_node() -> None:
    (finding,) = findings_of(
        {"name": "qa", "dependsOn": ["dev"]}, {"name": "prod", "dependsOn": ["qa", "staging"]}
    )
    assert finding[0] == ("spec", "environments", 1, "dependsOn", 1)
    assert "staging" in finding[1]


def test_duplicate_node() -> None:
    (finding,) = findings_of(
        {"name": "qa", "dependsOn": ["dev"]},
        {"name": "prod", "dependsOn": ["qa"]},
        {"name": "qa", "dependsOn": ["prod"]},
    )
    assert finding[0] == ("spec", "environments", 2, "name")
    assert "qa" in finding[1]


def test_node_without_depends_on() -> None:
    (finding,) = findings_of({"name": "qa", "dependsOn": ["dev"]}, {"name": "prod"})
    assert finding[0] == ("spec", "environments", 1, "dependsOn")
    assert "prod" in finding[1]


def test_root_cannot_depend_on_anything() -> None:
    findings = findings_of(
        {"name": "qa", "dependsOn": ["dev"]}, {"name": "dev", "dependsOn": ["qa"]}
    )
    assert ("spec", "environments", 1, "dependsOn") in [f[0] for f in findings]


def test_self_dependency() -> None:
    findings = findings_of({"name": "qa", "dependsOn": ["dev", "qa"]})
    assert ("spec", "environments", 0, "dependsOn", 1) in [f[0] for f in findings]


def _cycle_edges_are_real(graph: FlowGraph, cycle: list[str]) -> None:
    assert len(cycle) >= 2
    assert cycle[0] == cycle[-1]
    assert len(set(cycle[:-1])) == len(cycle) - 1
    # Read as a promotion path: each node is a parent of the next one.
    for a, b in itertools.pairwise(cycle):
        assert a in graph.nodes[b].parents, (a, b, cycle)


@pytest.mark.parametrize(
    ("nodes", "members"),
    [
        (
            ({"name": "qa", "dependsOn": ["dev", "prod"]}, {"name": "prod", "dependsOn": ["qa"]}),
            {"qa", "prod"},
        ),
        (
            (
                {"name": "qa", "dependsOn": ["dev", "prod-eu"]},
                {"name": "prod", "dependsOn": ["qa"]},
                {"name": "prod-eu", "dependsOn": ["prod"]},
            ),
            {"qa", "prod", "prod-eu"},
        ),
        (
            (
                {"name": "qa", "dependsOn": ["dev"]},
                {"name": "prod", "dependsOn": ["qa", "prod-asia"]},
                {"name": "prod-asia", "dependsOn": ["prod-eu"]},
                {"name": "prod-eu", "dependsOn": ["prod"]},
            ),
            {"prod", "prod-asia", "prod-eu"},
        ),
    ],
)
def test_cycle(nodes: tuple[dict[str, Any], ...], members: set[str]) -> None:
    graph, findings = build_graph(spec(*nodes), ENVS)
    cycle = find_cycle(graph)
    _cycle_edges_are_real(graph, cycle)
    assert set(cycle) == members
    (finding,) = [f for f in findings if "cycle" in f[1]]
    assert finding[1] == "cycle: " + " -> ".join(cycle)
    index = [n["name"] for n in nodes].index(cycle[0])
    assert finding[0] == ("spec", "environments", index, "dependsOn")
    # Nodes in a cycle never become ready.
    assert not members & set(graph.order())


def test_no_cycle_in_a_diamond() -> None:
    graph, _ = build_graph(spec(*DIAMOND), ENVS)
    assert find_cycle(graph) == []
