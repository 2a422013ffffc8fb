"""The release view: the flow's structure with each node's state, since when, and why."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, undefer

from conveyor.clock import utc
from conveyor.engine.context import flow_spec
from conveyor.errors import NotFound
from conveyor.model.duration import format_duration
from conveyor.model.flow import build_graph
from conveyor.model.states import PromotionState as P
from conveyor.store.tables import GateResultRow, PromotionRow, ReleaseRow, TaskRunRow


@dataclass(frozen=True)
class TaskView:
    stage: str
    task: str
    action: str
    status: str
    attempt: int
    started_at: datetime | None
    finished_at: datetime | None
    error: str
    output: str
    takeovers: int = 0  # attempts started again because the engine running them died
    next_attempt_at: datetime | None = None  # a polling or retrying task looks again then


@dataclass(frozen=True)
class NodeView:
    node: str
    environment: str
    state: str
    since: datetime
    detail: str  # "waiting: soak 2h in qa, 1h12m left", "blocked by failure in qa", ...
    started_at: datetime | None
    deployed_at: datetime | None
    finished_at: datetime | None
    parents: list[str]
    tasks: list[TaskView] = field(default_factory=list)
    gates: list[dict[str, Any]] = field(default_factory=list)
    rollback: bool = False  # put back by a rollback or a recall, outside the flow


@dataclass(frozen=True)
class ReleaseView:
    product: str
    version: str
    status: str
    flow: str | None
    flow_version: str
    created_at: datetime
    triggered_at: datetime | None
    finished_at: datetime | None
    artifacts: dict[str, Any]
    labels: dict[str, Any]
    message: str
    levels: list[list[NodeView]]
    release_tasks: list[TaskView]

    @property
    def nodes(self) -> list[NodeView]:
        return [n for level in self.levels for n in level]


def _tasks(rows: list[TaskRunRow]) -> list[TaskView]:
    return [
        TaskView(
            r.stage,
            r.task,
            r.action,
            r.status,
            r.attempt,
            utc(r.started_at) if r.started_at else None,
            utc(r.finished_at) if r.finished_at else None,
            r.error,
            r.output,
            r.takeovers,
            utc(r.next_attempt_at) if r.next_attempt_at else None,
        )
        for r in rows
    ]


def detail(
    p: PromotionRow, parents: list[PromotionRow], ancestors: list[PromotionRow], now: datetime
) -> str:
    state = P(p.state)
    if state == P.PENDING:
        stopped = (P.FAILED, P.REJECTED, P.TERMINATED)
        bad = next((q for q in ancestors if q.state in stopped), None)
        if bad is not None:
            return f"blocked by the {bad.state} promotion in {bad.environment}"
        waiting_on = sorted({q.environment for q in parents if q.state != P.SUCCEEDED})
        return f"after {', '.join(waiting_on)}" if waiting_on else ""
    if state == P.WAITING or (state == P.VERIFYING and p.wait_reason):
        if not p.wait_reason:
            return "ready"
        if p.wait_until is not None:
            left = utc(p.wait_until) - now
            return (
                f"{p.wait_reason}, {format_duration(left)} left"
                if left.total_seconds() > 0
                else f"{p.wait_reason}, due now"
            )
        return p.wait_reason
    return p.message


def _node(
    p: PromotionRow,
    parents: list[str],
    text: str,
    tasks: Mapping[int | None, list[TaskRunRow]],
    gates: Mapping[int, list[GateResultRow]],
) -> NodeView:
    return NodeView(
        p.node,
        p.environment,
        p.state,
        utc(p.state_since),
        text,
        utc(p.started_at) if p.started_at else None,
        utc(p.deployed_at) if p.deployed_at else None,
        utc(p.finished_at) if p.finished_at else None,
        parents,
        _tasks(tasks.get(p.id, [])),
        [
            {"stage": g.stage, "kind": g.kind, "result": g.result, "reason": g.reason}
            for g in gates.get(p.id, [])
        ],
        p.rollback,
    )


def build(session: Session, release: ReleaseRow, now: datetime) -> ReleaseView:
    promotions = session.scalars(
        select(PromotionRow).where(PromotionRow.release_id == release.id).order_by(PromotionRow.id)
    ).all()
    tasks: dict[int | None, list[TaskRunRow]] = {}
    for t in session.scalars(
        select(TaskRunRow)
        .where(TaskRunRow.release_id == release.id)
        .order_by(TaskRunRow.id)
        .options(undefer(TaskRunRow.output))
    ):
        tasks.setdefault(t.promotion_id, []).append(t)
    # Every promotion's gate results of its current generation, in one query.
    gates: dict[int, list[GateResultRow]] = {}
    for g in session.scalars(
        select(GateResultRow)
        .join(PromotionRow, GateResultRow.promotion_id == PromotionRow.id)
        .where(
            PromotionRow.release_id == release.id,
            GateResultRow.generation == PromotionRow.generation,
        )
        .order_by(GateResultRow.id)
    ):
        gates.setdefault(g.promotion_id, []).append(g)
    by_node: dict[str, list[PromotionRow]] = {}
    for p in promotions:
        by_node.setdefault(p.node, []).append(p)
    levels: list[list[NodeView]] = []
    flow_version = ""
    if release.flow_document is not None:
        spec = flow_spec(release)
        flow_version = spec.version
        graph, _ = build_graph(spec)
        for level in graph.levels():
            row: list[NodeView] = []
            for node in level:
                parents = [q for par in graph.nodes[node].parents for q in by_node.get(par, [])]
                # A failure anywhere upstream blocks this node, not only in its parents.
                ancestors = [q for a in graph.ancestors(node) for q in by_node.get(a, [])]
                for p in by_node.get(node, []):
                    row.append(
                        _node(
                            p,
                            list(graph.nodes[node].parents),
                            detail(p, parents, ancestors, now),
                            tasks,
                            gates,
                        )
                    )
            levels.append(row)
    rollbacks = [p for p in promotions if p.rollback]
    if rollbacks:
        levels.append([_node(p, [], detail(p, [], [], now), tasks, gates) for p in rollbacks])
    return ReleaseView(
        release.product,
        release.version,
        release.status,
        release.flow,
        flow_version,
        utc(release.created_at),
        utc(release.triggered_at) if release.triggered_at else None,
        utc(release.finished_at) if release.finished_at else None,
        dict(release.artifacts),
        dict(release.labels),
        release.message,
        levels,
        _tasks(tasks.get(None, [])),
    )


def node_of(view: ReleaseView, environment: str) -> NodeView:
    for node in view.nodes:
        if node.environment == environment:
            return node
    ref = f"{view.product}@{view.version}"
    raise NotFound(f"{ref} has no promotion to {environment} (see `conveyor release show {ref}`)")


def logs_text(node: NodeView) -> str:
    """Each task's last attempt and what it printed (the API's and the pages' logs)."""
    lines: list[str] = []
    for t in node.tasks:
        lines.append(f"== {t.stage}/{t.task} ({t.action}) attempt {t.attempt}: {t.status}")
        if t.error:
            lines.append(f"error: {t.error}")
        if t.output:
            lines.append(t.output.rstrip("\n"))
    return "\n".join(lines) + "\n"
