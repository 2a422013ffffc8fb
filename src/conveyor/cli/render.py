"""Drawing the release view in the terminal.

The view fits the terminal: every column but the timeline and the detail keeps its full
width; the timeline takes what is left (down to nothing) and the detail wraps. Times are
local, with the zone said once above the table, or UTC with `--utc`.
"""

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
    "polling": "yellow",
    "cancelled": "red",
}
GATE_STYLE = {"pass": "green", "wait": "yellow", "fail": "red bold"}
MAX_BAR = 40
MIN_BAR = 8  # narrower than this, the timeline is left out
MIN_DETAIL = 24
FAILED = ("failed", "rejected")


class Clock:
    """How the view writes times: local (zone said once) or UTC."""

    def __init__(self, now: datetime, utc: bool) -> None:
        self.utc = utc
        shown = now if utc else now.astimezone()
        offset = shown.strftime("%z")
        name = shown.tzname() or ""
        self.zone = name if offset == "+0000" else f"{name} (UTC{offset[:3]}:{offset[3:]})"

    def t(self, dt: datetime | None) -> str:
        if dt is None:
            return ""
        return (dt if self.utc else dt.astimezone()).strftime("%H:%M:%S")


def _bar(node: NodeView, start: datetime, end: datetime, width: int) -> str:
    """Where the node ran within the release's span, so parallel nodes visibly overlap."""
    if node.started_at is None:
        return ""
    span = max((end - start).total_seconds(), 1e-6)
    a = min(int((node.started_at - start).total_seconds() / span * width), width - 1)
    b_time = node.finished_at or end
    b = max(a + 1, round((b_time - start).total_seconds() / span * width))
    return " " * a + "█" * (min(b, width) - a)


def _axis(start: datetime, end: datetime, width: int, clock: Clock) -> str:
    first, last = clock.t(start), clock.t(end)
    if width >= len(first) + len(last) + 1:
        return first + " " * (width - len(first) - len(last)) + last
    return first[:width]


def waiting_task(node: NodeView, clock: Clock) -> str:
    """Why a running node waits on a task: polling something outside, or retrying."""
    for t in node.tasks:
        if t.status in ("polling", "retrying"):
            said = t.output.strip().splitlines()[-1] if t.output.strip() else t.error
            again = f", next try {clock.t(t.next_attempt_at)}" if t.next_attempt_at else ""
            what = "polling" if t.status == "polling" else f"retrying after attempt {t.attempt}"
            return f"{t.task} {what}" + (f": {said}" if said else "") + again
    return ""


def release_view(
    view: ReleaseView, now: datetime, logs: bool = False, width: int = 160, utc: bool = False
) -> RenderableType:
    clock = Clock(now, utc)
    head = Text.assemble(
        ("Release ", "bold"),
        (f"{view.product}@{view.version}", "bold"),
        "  ",
        (view.status, STYLE.get(view.status, "")),
        f"   flow {view.flow} v{view.flow_version}" if view.flow else "   (not triggered)",
        ("\n", ""),
        (f"times in {clock.zone}", "dim"),
    )
    rows = []
    for depth, level in enumerate(view.levels):
        for node in level:
            # A rollback is no child of the flow's last nodes: drawn at the left.
            indent = 0 if node.rollback else depth
            name = ("  " * indent) + ("└ " if indent else "") + node.environment
            if node.node != node.environment:
                name += f" ({node.node})"
            detail = node.detail
            if node.state in ("running", "verifying"):
                detail = waiting_task(node, clock) or detail
            cells = [
                name,
                ", ".join(node.parents),
                node.state,
                clock.t(node.since),
                clock.t(node.started_at),
                clock.t(node.finished_at),
            ]
            rows.append((node, cells, detail))
    fixed = ["environment", "after", "state", "since", "started", "finished"]
    widths = [max([len(h)] + [len(r[1][i]) for r in rows]) for i, h in enumerate(fixed)]
    # Two spaces between columns (rich's padding), timeline and detail after the fixed ones.
    room = width - sum(widths) - 2 * (len(fixed) + 1) - MIN_DETAIL
    bar = min(MAX_BAR, room)
    table = Table(box=None, pad_edge=False, header_style="bold", expand=False)
    for col in fixed:
        table.add_column(col, no_wrap=True)
    if bar >= MIN_BAR:
        table.add_column("timeline", no_wrap=True, width=bar)
    table.add_column("detail", overflow="fold")
    starts = [n.started_at for n in view.nodes if n.started_at]
    start = min(starts) if starts else now
    end = max([n.finished_at or now for n in view.nodes if n.started_at] or [now])
    for node, cells, detail in rows:
        line: list[str | Text] = [*cells[:2], Text(cells[2], STYLE.get(node.state, "")), *cells[3:]]
        if bar >= MIN_BAR:
            line.append(Text(_bar(node, start, end, bar), STYLE.get(node.state, "")))
        table.add_row(*line, detail)
    if bar >= MIN_BAR and starts:
        table.add_row(*[""] * len(fixed), Text(_axis(start, end, bar, clock), "dim"), "")
    parts: list[RenderableType] = [head, table]
    failed = [n for n in view.nodes if n.state in FAILED]
    if view.status == "failed" and failed:
        names = ", ".join(n.environment for n in failed)
        parts.append(Text(f"failed in {names}:", "red"))
        parts.extend(Text(f"  {n.environment}: {n.detail}", "red") for n in failed)
        if view.message and not all(n.environment in view.message for n in failed):
            parts.append(Text(view.message, "red"))
    elif view.message and view.status != "succeeded":
        parts.append(Text(view.message, "red"))
    if logs:
        parts.extend(_logs(view, clock))
    return Group(*parts)


def _logs(view: ReleaseView, clock: Clock) -> list[RenderableType]:
    """Each task's last attempt (its number says how many there were) with its output."""
    out: list[RenderableType] = [Text("")]

    def one(where: str, t: TaskView) -> None:
        took = (
            format_duration(t.finished_at - t.started_at) if t.finished_at and t.started_at else ""
        )
        waits = t.status in ("polling", "retrying") and t.next_attempt_at
        again = f", next try {clock.t(t.next_attempt_at)}" if waits else ""
        out.append(
            Text.assemble(
                (f"── {where} {t.stage}/{t.task} ", "bold"),
                (t.status, STYLE.get(t.status, "")),
                f" (attempt {t.attempt}"
                + (f", {t.takeovers} taken over from an engine that died" if t.takeovers else "")
                + (f", {took}" if took else "")
                + again
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
