"""The promotion flow as a DAG: nodes, parents, order, and the checks that keep it sound."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from conveyor.model.definitions import ChannelRef, FlowNode, FlowSpec, PolicyBody

# A problem found in a definition: the path of the field inside the document, and what to do.
Path = tuple[str | int, ...]
Finding = tuple[Path, str]


@dataclass(frozen=True)
class Node:
    name: str
    parents: tuple[str, ...]
    channel: ChannelRef | None = None
    policy: PolicyBody | None = None

    def environments(self, env_labels: Mapping[str, Mapping[str, str]]) -> list[str]:
        """The environments this node promotes to: itself, or every one its channel selects."""
        if self.channel is None:
            return [self.name]
        want = self.channel.labels
        return sorted(
            env
            for env, labels in env_labels.items()
            if all(labels.get(k) == v for k, v in want.items())
        )


@dataclass(frozen=True)
class FlowGraph:
    root: str
    nodes: dict[str, Node] = field(default_factory=dict)

    def children(self, name: str) -> list[str]:
        return [n.name for n in self.nodes.values() if name in n.parents]

    def order(self) -> list[str]:
        """Nodes in a stable topological order (parents before children)."""
        done: list[str] = []
        placed: set[str] = set()
        pending = list(self.nodes)
        for _ in range(len(self.nodes) + 1):
            ready = [n for n in pending if set(self.nodes[n].parents) <= placed]
            if not ready:
                break
            for n in ready:
                done.append(n)
                placed.add(n)
                pending.remove(n)
        return done

    def ancestors(self, name: str) -> set[str]:
        seen: set[str] = set()
        stack = list(self.nodes[name].parents)
        while stack:
            n = stack.pop()
            if n not in seen:
                seen.add(n)
                stack.extend(self.nodes[n].parents)
        return seen

    def levels(self) -> list[list[str]]:
        """Nodes grouped by depth from the root: each group can run side by side."""
        depth: dict[str, int] = {}
        for n in self.order():
            parents = self.nodes[n].parents
            depth[n] = 1 + max((depth[p] for p in parents), default=-1)
        out: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
        for n in self.order():
            out[depth[n]].append(n)
        return out


def build_graph(
    spec: FlowSpec, known_environments: Iterable[str] | None = None
) -> tuple[FlowGraph, list[Finding]]:
    """Build the DAG and list every problem: unknown names, duplicates, cycles, orphans."""
    findings: list[Finding] = []
    known = set(known_environments) if known_environments is not None else None
    root = spec.triggerEnvironment
    nodes: dict[str, Node] = {root: Node(root, ())}
    if known is not None and root not in known:
        findings.append((("spec", "triggerEnvironment"), _unknown_env(root, known)))

    for i, raw in enumerate(spec.environments):
        where: Path = ("spec", "environments", i)
        if raw.name == root:
            if raw.dependsOn:
                findings.append(
                    (
                        (*where, "dependsOn"),
                        f"'{root}' is the trigger environment: it depends on nothing",
                    )
                )
            if raw.policy is not None:
                nodes[root] = Node(root, (), None, raw.policy)
            continue
        if raw.name in nodes:
            findings.append(((*where, "name"), f"node '{raw.name}' appears twice in the flow"))
            continue
        if raw.channel is None and known is not None and raw.name not in known:
            findings.append(((*where, "name"), _unknown_env(raw.name, known)))
        if not raw.dependsOn:
            findings.append(
                (
                    (*where, "dependsOn"),
                    f"node '{raw.name}' cannot be reached: give it dependsOn "
                    f"(for example [{root}])",
                )
            )
        nodes[raw.name] = _node(raw)

    for i, raw in enumerate(spec.environments):
        for j, parent in enumerate(raw.dependsOn):
            if parent not in nodes:
                findings.append(
                    (
                        ("spec", "environments", i, "dependsOn", j),
                        f"node '{raw.name}' depends on '{parent}', which is not a node of "
                        f"this flow; nodes are: {', '.join(sorted(nodes))}",
                    )
                )
            elif parent == raw.name:
                findings.append(
                    (
                        ("spec", "environments", i, "dependsOn", j),
                        f"node '{raw.name}' depends on itself",
                    )
                )

    graph = FlowGraph(root, nodes)
    cycle = find_cycle(graph)
    if cycle:
        idx = next(i for i, n in enumerate(spec.environments) if n.name == cycle[0])
        findings.append(
            (("spec", "environments", idx, "dependsOn"), f"cycle: {' -> '.join(cycle)}")
        )
    return graph, findings


def find_cycle(graph: FlowGraph) -> list[str]:
    """A cycle as a closed path ['a', 'b', 'a'], or [] when there is none."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(graph.nodes, white)
    stack_path: list[str] = []

    def visit(n: str) -> list[str]:
        colour[n] = grey
        stack_path.append(n)
        for p in graph.nodes[n].parents:
            if p not in graph.nodes:
                continue
            if colour[p] == grey:
                loop = [*stack_path[stack_path.index(p) :], p]
                return list(reversed(loop))
            if colour[p] == white:
                found = visit(p)
                if found:
                    return found
        stack_path.pop()
        colour[n] = black
        return []

    for n in graph.nodes:
        if colour[n] == white:
            found = visit(n)
            if found:
                return found
    return []


def _node(raw: FlowNode) -> Node:
    return Node(raw.name, tuple(dict.fromkeys(raw.dependsOn)), raw.channel, raw.policy)


def _unknown_env(name: str, known: set[str]) -> str:
    hint = f"known: {', '.join(sorted(known))}" if known else "no environment is defined yet"
    return f"environment '{name}' is not defined: apply it first or fix the name ({hint})"
