"""Drawing the release view and resource lists in the terminal."""

from __future__ import annotations

from datetime import datetime

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from conveyor.engine.view import NodeView, ReleaseView, TaskView
from conveyor.model.duration import format_duration

STYLE = {
    "pending": "dim",
    "waiting": "yellow",
    "running": "cyan",
    "verifying": "blue",
    "succeeded": "green",
    "failed": "red bold",
    "recalled": "magenta",
    "rejected": "red",
    "superseded": "dim",
    "skipped": "dim",
    "terminated": "red",
    "created": "dim",
    "queued": "dim",
    "retrying": "yellow",
    "cancelled": "red",
}
GATE_STYLE = {"pass": "green", "wait": "yellow", "fail": "red bold"}
BAR = 24


def _t(dt: datetime | None) -> str:
    return dt.strftime("%H:%M:%S") if dt else ""


def _bar(node: NodeView, start: datetime, end: datetime) -> str:
    """Where the node ran within the release's span, so parallel nodes visibly overlap."""
    if node.started_at is None:
        return ""
    span = max((end - start).total_seconds(), 1e-6)
    a = int((node.started_at - start).total_seconds() / span * BAR)
    b_time = node.finished_at or end
    b = max(a + 1, round((b_time - start).total_seconds() / span * BAR))
    return " " * a + "█" * (min(b, BAR) - a)


def release_view(view: ReleaseView, now: datetime, logs: bool = False) -> RenderableType:
    head = Text.assemble(
        ("Release ", "bold"),
        (f"{view.product}@{view.version}", "bold"),
        "  ",
        (view.status, STYLE.get(view.status, "")),
        f"   flow {view.flow} v{view.flow_version}" if view.flow else "   (not triggered)",
    )
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in (
        "environment",
        "after",
        "state",
        "since",
        "started",
        "finished",
        "timeline",
        "detail",
    ):
        table.add_column(col, no_wrap=col != "detail")
    starts = [n.started_at for n in view.nodes if n.started_at]
    start = min(starts) if starts else now
    end = max([n.finished_at or now for n in view.nodes if n.started_at] or [now])
    for depth, level in enumerate(view.levels):
        for node in level:
            # A rollback is no child of the flow's last nodes: drawn at the left.
            indent = 0 if node.rollback else depth
            name = ("  " * indent) + ("└ " if indent else "") + node.environment
            if node.node != node.environment:
                name += f" ({node.node})"
            table.add_row(
                name,
                ", ".join(node.parents),
                Text(node.state, STYLE.get(node.state, "")),
                _t(node.since),
                _t(node.started_at),
                _t(node.finished_at),
                Text(_bar(node, start, end), STYLE.get(node.state, "")),
                node.detail,
            )
    parts: list[RenderableType] = [head, table]
    if view.message and view.status != "succeeded":
        parts.append(Text(view.message, "red"))
    if logs:
        parts.extend(_logs(view))
    return Group(*parts)


def _logs(view: ReleaseView) -> list[RenderableType]:
    out: list[RenderableType] = [Text("")]

    def one(where: str, t: TaskView) -> None:
        took = (
            format_duration(t.finished_at - t.started_at) if t.finished_at and t.started_at else ""
        )
        out.append(
            Text.assemble(
                (f"── {where} {t.stage}/{t.task} ", "bold"),
                (t.status, STYLE.get(t.status, "")),
                f" (attempt {t.attempt}"
                + (f", {t.takeovers} taken over from an engine that died" if t.takeovers else "")
                + (f", {took}" if took else "")
                + ")",
            )
        )
        if t.error:
            out.append(Text(f"   {t.error}", "red"))
        for line in t.output.rstrip().splitlines():
            out.append(Text(f"   {line}"))

    for t in view.release_tasks:
        one("release", t)
    for node in view.nodes:
        for g in node.gates:
            out.append(
                Text.assemble(
                    (f"── {node.environment} {g['stage']}/gate {g['kind']} ", "bold"),
                    (g["result"], GATE_STYLE.get(g["result"], "")),
                    f" ({g['reason']})",
                )
            )
        for t in node.tasks:
            where = node.environment
            one(where if node.node == where else f"{where} ({node.node})", t)
    return out


def resource_table(rows: list[tuple[str, str, int, str]]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("kind", "name", "revision", "summary"):
        table.add_column(col)
    for kind, name, revision, summary in rows:
        table.add_row(kind, name, str(revision), summary)
    return table
