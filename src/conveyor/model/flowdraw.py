"""Draw a promotion flow DAG as ASCII text, a Mermaid flowchart or a Graphviz digraph."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from conveyor.model.definitions import FlowSpec
from conveyor.model.flow import FlowGraph, Node, build_graph, find_cycle
from conveyor.model.states import PromotionState as S

# Pale fills so the node names stay readable in both Mermaid and Graphviz renderings.
STATE_COLOURS: dict[str, str] = {
    S.PENDING: "#eeeeee",
    S.WAITING: "#fff9c4",
    S.RUNNING: "#bbdefb",
    S.VERIFYING: "#b3e5fc",
    S.SUCCEEDED: "#c8e6c9",
    S.FAILED: "#ffcdd2",
    S.REJECTED: "#ffe0b2",
    S.RECALLED: "#f8bbd0",
    S.SUPERSEDED: "#e0e0e0",
    S.SKIPPED: "#e0e0e0",
    S.TERMINATED: "#e0e0e0",
}
UNKNOWN_STATE_COLOUR = "#f5f5f5"

# Mermaid reads a bare `end` as the close of a subgraph, so it cannot be a node id.
_MERMAID_RESERVED = frozenset({"end"})


def draw(
    spec: FlowSpec, fmt: str, states: Mapping[str, str] | None = None, name: str = "flow"
) -> str:
    """Draw the flow; `states` maps node name -> state to colour or annotate nodes.

    Dependencies on names that are not nodes of the flow are noted in text but drawn as no
    edge, so a flow that `build_graph` would reject still gives a picture of what it says.
    """
    renderers: dict[str, Callable[[FlowSpec, FlowGraph, Mapping[str, str], str], str]] = {
        "text": _text,
        "mermaid": _mermaid,
        "dot": _dot,
    }
    if fmt not in renderers:
        raise ValueError(f"unknown format '{fmt}': use text, mermaid or dot")
    graph, _ = build_graph(spec)
    cycle = find_cycle(graph)
    if cycle:
        raise ValueError(f"cannot draw a flow with a cycle: {' -> '.join(cycle)}")
    return renderers[fmt](spec, graph, states or {}, name)


def _selector(node: Node) -> str:
    if node.channel is None:
        return ""
    return ", ".join(f"{k}={v}" for k, v in node.channel.labels.items())


def _known_parents(graph: FlowGraph, name: str) -> list[str]:
    return [p for p in graph.nodes[name].parents if p in graph.nodes]


def _edges(graph: FlowGraph) -> list[tuple[str, str]]:
    return [(p, n.name) for n in graph.nodes.values() for p in n.parents if p in graph.nodes]


# --- text ----------------------------------------------------------------------------


def _text(spec: FlowSpec, graph: FlowGraph, states: Mapping[str, str], name: str) -> str:
    rank = {n: i for i, n in enumerate(graph.nodes)}
    # Each node hangs under one parent only, the one drawn last, so that reading top-down
    # every node comes after all it waits for; its other parents are named in a note rather
    # than repeating the subtree under each of them. A node's place in the drawing is the
    # ranks along its path from the top, so comparing paths compares places.
    path: dict[str, tuple[int, ...]] = {}
    under: dict[str | None, list[str]] = {}
    # Not graph.order(): that leaves out nodes waiting on a name outside the flow.
    pending = list(graph.nodes)
    while pending:
        n = next(n for n in pending if all(p in path for p in _known_parents(graph, n)))
        pending.remove(n)
        known = _known_parents(graph, n)
        home = max(known, key=lambda p: path[p]) if known else None
        path[n] = (path[home] if home is not None else ()) + (rank[n],)
        under.setdefault(home, []).append(n)
    for kids in under.values():
        kids.sort(key=rank.__getitem__)

    def label(n: str) -> str:
        node = graph.nodes[n]
        text = n + (f" [{states[n]}]" if n in states else "")
        notes: list[str] = []
        if n == graph.root:
            notes.append("trigger")
        if node.channel is not None:
            notes.append(f"channel {_selector(node)}")
        missing = [p for p in node.parents if p not in graph.nodes]
        if len(node.parents) > 1 or missing:
            notes.append(f"after {', '.join(node.parents)}")
        if missing:
            notes.append(f"not in the flow: {', '.join(missing)}")
        if not node.parents and n != graph.root:
            notes.append("no dependsOn: never reached")
        return text + (f"  ({'; '.join(notes)})" if notes else "")

    lines = [f"{name} v{spec.version} (product {spec.product})"]

    def walk(n: str, prefix: str) -> None:
        kids = under.get(n, [])
        for i, kid in enumerate(kids):
            last = i == len(kids) - 1
            lines.append(prefix + ("└─> " if last else "├─> ") + label(kid))
            walk(kid, prefix + ("     " if last else "│    "))

    for top in under.get(None, []):
        lines.append(label(top))
        walk(top, " ")
    return "\n".join(lines) + "\n"


# --- mermaid -------------------------------------------------------------------------


def _mermaid_ids(names: list[str]) -> dict[str, str]:
    """Unique Mermaid-safe ids: names that differ only in punctuation must not merge."""
    ids: dict[str, str] = {}
    used: set[str] = set()
    for n in names:
        base = re.sub(r"[^A-Za-z0-9]", "_", n)
        cand, k = base, 1
        while cand in used or cand in _MERMAID_RESERVED:
            k += 1
            cand = f"{base}_{k}"
        ids[n] = cand
        used.add(cand)
    return ids


def _mermaid(spec: FlowSpec, graph: FlowGraph, states: Mapping[str, str], name: str) -> str:
    ids = _mermaid_ids(list(graph.nodes))
    lines = ["flowchart LR"]
    for n, node in graph.nodes.items():
        if n == graph.root:
            shape = f'(["{n}"])'
        elif node.channel is not None:
            shape = '{{"' + f"{n} ({_selector(node)})".replace('"', "#quot;") + '"}}'
        else:
            shape = f'["{n}"]'
        lines.append(f"    {ids[n]}{shape}")
    lines += [f"    {ids[p]} --> {ids[c]}" for p, c in _edges(graph)]
    by_state: dict[str, list[str]] = {}
    for n in graph.nodes:
        if n in states:
            by_state.setdefault(states[n], []).append(ids[n])
    for state, members in by_state.items():
        cls = re.sub(r"[^A-Za-z0-9]", "_", state)
        lines.append(f"    classDef {cls} fill:{STATE_COLOURS.get(state, UNKNOWN_STATE_COLOUR)}")
        lines.append(f"    class {','.join(members)} {cls}")
    return "\n".join(lines) + "\n"


# --- dot -----------------------------------------------------------------------------


def _q(*parts: str) -> str:
    """A quoted DOT string, its parts on separate lines of the label."""
    escaped = (t.replace("\\", "\\\\").replace('"', '\\"') for t in parts)
    return '"' + "\\n".join(escaped) + '"'


def _dot(spec: FlowSpec, graph: FlowGraph, states: Mapping[str, str], name: str) -> str:
    lines = [f"digraph {_q(name)} {{", "  rankdir=LR;", "  node [shape=box];"]
    for n, node in graph.nodes.items():
        attrs: list[str] = []
        if n == graph.root:
            attrs.append("shape=oval")
        if node.channel is not None:
            attrs += ["shape=hexagon", f"label={_q(n, _selector(node))}"]
        if n in states:
            colour = STATE_COLOURS.get(states[n], UNKNOWN_STATE_COLOUR)
            attrs += ["style=filled", f"fillcolor={_q(colour)}"]
        lines.append(f"  {_q(n)}" + (f" [{', '.join(attrs)}]" if attrs else "") + ";")
    lines += [f"  {_q(p)} -> {_q(c)};" for p, c in _edges(graph)]
    lines.append("}")
    return "\n".join(lines) + "\n"
