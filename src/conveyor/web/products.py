"""A product: its releases as a timeline, newest first (where each got to, where it waits
and why), above its flow's DAG showing what each environment runs; promote or roll back."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from conveyor.engine.service import Conveyor
from conveyor.errors import ConveyorError
from conveyor.model.access import Role
from conveyor.model.states import ReleaseStatus
from conveyor.web.chart import layout
from conveyor.web.common import back_to, form, may, page, refused, visitor
from conveyor.web.flows import gates_by_environment, graph_of

router = APIRouter(include_in_schema=False)
TIMELINE = 20  # releases shown, newest first


@router.get("/products/{name}", response_model=None)
def product(request: Request, name: str) -> Response:
    cv = visitor(request)
    cv.may_look()
    cv.get("Product", name)  # NotFound names it
    rows = cv.status(name)
    running = {r.environment: r.version or "" for r in rows}
    releases = list(reversed(cv.list_releases(name)))
    timeline = [(r, cv.show(f"{r.product}@{r.version}")) for r in releases[:TIMELINE]]
    flows = [f for f in cv.get("PromotionFlow") if f.spec.product == name]
    charts = []
    for f in flows:
        graph = graph_of(f.spec)
        gates = gates_by_environment(cv, f.spec, graph)
        charts.append((f.name, layout(graph, gates, notes=running)))
    environments = [r.environment for r in rows]
    return page(
        request,
        "product.html",
        cv,
        name=name,
        timeline=timeline,
        total=len(releases),
        charts=charts,
        flows=[f.name for f in flows],
        waiting=[r for r in releases if r.status == ReleaseStatus.CREATED.value],
        deployed=[r for r in releases if r.status != ReleaseStatus.CREATED.value],
        may_trigger=any(
            may(cv, Role.PROMOTER, "trigger", f.spec.triggerEnvironment) for f in flows
        ),
        rollback_envs=_rollback_envs(cv, environments),
    )


def _rollback_envs(cv: Conveyor, environments: list[str]) -> list[str]:
    return [e for e in environments if may(cv, Role.PROMOTER, "roll back", e)]


@router.post("/products/{name}/rollback", response_model=None)
async def rollback(request: Request, name: str) -> Response:
    cv = visitor(request)
    fields = await form(request)
    environment, version = fields.get("environment", ""), fields.get("version", "")
    try:
        await run_in_threadpool(cv.rollback, environment, f"{name}@{version}")
    except ConveyorError as exc:
        return refused(request, cv, str(exc), f"/products/{name}")
    return back_to(f"/products/{name}")
