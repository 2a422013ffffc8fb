"""Two pages no other tool has: an environment's health as strips over the soak window
(against the product's thresholds), and a release's forecast (the `simulate` replay) as a
timeline of when each environment would be reached, held or recalled."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import Response

from conveyor.engine.service import Conveyor
from conveyor.engine.simulate import Forecast, simulate
from conveyor.errors import ConveyorError, DefinitionError, Problem
from conveyor.model.duration import format_duration, parse_duration
from conveyor.web.common import page, refused, visitor

router = APIRouter(include_in_schema=False)
SAMPLES = 48  # looks at the health along the soak window, one strip cell each


@dataclass(frozen=True)
class Strip:
    entity: str
    cells: list[str]  # "healthy", "unhealthy" or "neither", oldest first
    healthy: float
    unhealthy: float
    soak: str
    passes: bool  # healthy enough to promote
    fails: bool  # unhealthy enough to recall


@router.get("/health/{environment}", response_model=None)
def health(request: Request, environment: str, release: str = "") -> Response:
    cv = visitor(request)
    cv.may_look(environment)
    ref = release or cv.running(environment)
    product, _, version = ref.partition("@")
    rules = cv.get("Product", product)[0].spec.rolloutCriteria
    now = cv.clock.now()
    final = cv.health(environment, product, version, at=now)
    seen = [h.first_seen for h in final.values() if h.first_seen is not None]
    start = min(seen, default=now)
    looks = [start + (now - start) * (i + 1) / SAMPLES for i in range(SAMPLES)]
    states: dict[str, list[str]] = {name: [] for name in final}
    for at in looks if seen else []:
        for name, h in cv.health(environment, product, version, at=at).items():
            states.setdefault(name, []).append(h.current)
    strips = [
        Strip(
            name,
            states.get(name, []),
            h.healthy_ratio,
            h.unhealthy_ratio,
            format_duration(h.soak),
            h.satisfies_healthy,
            h.unhealthy_verdict,
        )
        for name, h in sorted(final.items())
    ]
    return page(
        request,
        "health.html",
        cv,
        environment=environment,
        ref=ref,
        strips=strips,
        start=start,
        now=now,
        healthy_threshold=rules.healthyThreshold,
        unhealthy_threshold=rules.unhealthyThreshold,
    )


@router.get("/releases/{ref}/forecast", response_model=None)
def forecast(request: Request, ref: str, span: str = "14d", labels: str = "") -> Response:
    """`conveyor simulate REF --for SPAN --label K=V`, drawn: labels as `k=v,k2=v2`."""
    cv = visitor(request)
    cv.may_look()
    try:
        replay = _replay(cv, ref, span, labels)
    except ConveyorError as exc:
        return refused(request, cv, str(exc), f"/releases/{ref}")
    total = max((replay.end - replay.start).total_seconds(), 1.0)

    def percent(at: datetime) -> float:
        return round((at - replay.start).total_seconds() / total * 100, 2)

    return page(
        request,
        "forecast.html",
        cv,
        ref=ref,
        f=replay,
        span=span,
        labels=labels,
        percent=percent,
        after=lambda at: format_duration(at - replay.start) if at else "",
    )


def _replay(cv: Conveyor, ref: str, span: str, labels: str) -> Forecast:
    try:
        duration = parse_duration(span)
    except ValueError as exc:
        raise DefinitionError(Problem(str(exc), "query", None, "span")) from None
    pairs = dict(p.split("=", 1) for p in labels.split(",") if "=" in p)
    url = cv.store.engine.url.render_as_string(hide_password=False)
    return simulate(url, ref, span=duration, labels=pairs, actor=cv.actor, system_clock=cv.clock)
