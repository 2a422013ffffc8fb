"""A flow's DAG laid out for SVG: left to right by depth, environments that run side by side
stacked in a column, each edge labelled with the gates of the environment it leads to."""

from __future__ import annotations

from dataclasses import dataclass, field

from conveyor.model.flow import FlowGraph

BOX_W, BOX_H = 150, 44
COL_W, ROW_H = BOX_W + 240, 78  # the gap holds the gates' label
PAD = 16


@dataclass(frozen=True)
class Box:
    name: str
    x: int
    y: int
    state: str = ""  # in a release's chart: the promotion's state there
    note: str = ""  # the version it runs, or the state


@dataclass(frozen=True)
class Edge:
    path: str  # an SVG path from the parent's right side to the child's left side
    label: str  # the child's gates, "approval · window"
    label_x: int  # where the label ends (it is right-aligned)
    label_y: int


@dataclass
class Chart:
    width: int
    height: int
    boxes: list[Box] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)


def layout(
    graph: FlowGraph,
    gates: dict[str, list[str]] | None = None,
    states: dict[str, str] | None = None,
    notes: dict[str, str] | None = None,
) -> Chart:
    gates, states, notes = gates or {}, states or {}, notes or {}
    levels = graph.levels()
    rows = max((len(level) for level in levels), default=1)
    height = rows * ROW_H + 2 * PAD
    chart = Chart(len(levels) * COL_W - (COL_W - BOX_W) + 2 * PAD, height)
    where: dict[str, tuple[int, int]] = {}
    for column, level in enumerate(levels):
        top = (height - len(level) * ROW_H) // 2  # each column centred on the tallest
        for row, name in enumerate(level):
            x, y = PAD + column * COL_W, top + row * ROW_H + (ROW_H - BOX_H) // 2
            where[name] = (x, y)
            chart.boxes.append(Box(name, x, y, states.get(name, ""), notes.get(name, "")))
    for name, node in graph.nodes.items():
        x2, y2 = where[name]
        for parent in node.parents:
            x1, y1 = where[parent]
            start, end = (x1 + BOX_W, y1 + BOX_H // 2), (x2, y2 + BOX_H // 2)
            bend = (end[0] - start[0]) // 2
            path = (
                f"M{start[0]},{start[1]} C{start[0] + bend},{start[1]} "
                f"{end[0] - bend},{end[1]} {end[0]},{end[1]}"
            )
            label = " · ".join(gates.get(name, []))
            # Right-aligned over the edge's last, level stretch: labels of stacked children
            # stay apart, one above each arrow.
            chart.edges.append(Edge(path, label, end[0] - 10, end[1] - 6))
    return chart
