"""The flows: each as a chart (its DAG, gates on the edges) and as YAML with its revision
history and diffs, with a Trigger button for those who may start a release down it."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from conveyor.engine.revisions import diff
from conveyor.engine.service import Conveyor
from conveyor.errors import ConveyorError, NotFound
from conveyor.model.access import Role
from conveyor.model.definitions import FlowSpec
from conveyor.model.flow import FlowGraph, build_graph
from conveyor.model.states import ReleaseStatus
from conveyor.web.chart import layout
from conveyor.web.common import back_to, form, may, page, refused, visitor

router = APIRouter(include_in_schema=False)


def graph_of(spec: FlowSpec) -> FlowGraph:
    graph, _ = build_graph(spec)  # stored flows were checked when applied
    return graph


def gates_by_environment(cv: Conveyor, spec: FlowSpec, graph: FlowGraph) -> dict[str, list[str]]:
    """The kinds of gate each environment's merged policy holds, for the edges' labels."""
    kinds: dict[str, list[str]] = {}
    for name in graph.nodes:
        body = cv.explain(spec.product, name).body
        kinds[name] = [next(iter(g)) for g in body.gates or [] if g]
    return kinds


@router.get("/flows", response_model=None)
def flows(request: Request) -> Response:
    cv = visitor(request)
    cv.may_look()
    return page(request, "flows.html", cv, flows=cv.get("PromotionFlow"))


@router.get("/flows/{name}", response_model=None)
def flow(request: Request, name: str, rev: int | None = None) -> Response:
    cv = visitor(request)
    cv.may_look()
    current = cv.get("PromotionFlow", name)[0]
    spec: FlowSpec = current.spec
    graph = graph_of(spec)
    history = cv.revisions("PromotionFlow", name)
    shown = next((r for r in history if r.revision == (rev or current.revision)), None)
    if shown is None:
        raise NotFound(f"PromotionFlow/{name} has no revision {rev}")
    before = next((r for r in history if r.revision == shown.revision - 1), None)
    waiting = [r for r in cv.list_releases(spec.product) if r.status == ReleaseStatus.CREATED.value]
    return page(
        request,
        "flow.html",
        cv,
        name=name,
        spec=spec,
        chart=layout(graph, gates_by_environment(cv, spec, graph)),
        history=list(reversed(history)),
        shown=shown,
        change=diff(before, shown, f"PromotionFlow/{name}") if before else "",
        waiting=waiting,
        may_trigger=may(cv, Role.PROMOTER, "trigger", spec.triggerEnvironment),
    )


@router.post("/flows/{name}/trigger", response_model=None)
async def trigger(request: Request, name: str) -> Response:
    cv = visitor(request)
    ref = (await form(request)).get("release", "")
    try:
        await run_in_threadpool(cv.trigger, name, ref)
    except ConveyorError as exc:
        return refused(request, cv, str(exc), f"/flows/{name}")
    return back_to(f"/releases/{ref}")
