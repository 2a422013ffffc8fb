"""One promotion (its gates and tasks) and its logs; an environment's windows and the health
of its entities."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from conveyor.api.app import Reader
from conveyor.engine.service import Conveyor
from conveyor.engine.view import NodeView, logs_text, node_of
from conveyor.jsonstyle import health_doc, plain, windows_doc
from conveyor.model.definitions import ProductSpec

router = APIRouter(tags=["places"])


def _node(cv: Conveyor, ref: str, environment: str) -> NodeView:
    cv.may_look(environment)
    return node_of(cv.show(ref), environment)


@router.get("/promotions/{ref}/{environment}")
def promotion(cv: Reader, ref: str, environment: str) -> Any:
    """Its state, since when and why, its gates' last results and its tasks."""
    return plain(_node(cv, ref, environment))


@router.get("/promotions/{ref}/{environment}/logs", response_class=PlainTextResponse)
def promotion_logs(cv: Reader, ref: str, environment: str) -> str:
    """Each task's last attempt and what it printed, as `release show --logs` shows them."""
    return logs_text(_node(cv, ref, environment))


@router.get("/environments/{environment}/windows")
def windows(
    cv: Reader, environment: str, product: str | None = None, at: datetime | None = None
) -> Any:
    """Whether a promotion may start there at `at` (default now), and the windows that say."""
    cv.may_look(environment)
    when = at or cv.clock.now()
    found, decision = cv.windows(environment, product, when)
    return plain(windows_doc(environment, when, found, decision))


@router.get("/environments/{environment}/entities")
def entities(
    cv: Reader, environment: str, release: str | None = None, at: datetime | None = None
) -> list[dict[str, Any]]:
    """Each entity's health over the soak of `release` (default: what runs there)."""
    cv.may_look(environment)
    product, _, version = (release or cv.running(environment)).partition("@")
    spec = cv.get("Product", product)[0].spec
    assert isinstance(spec, ProductSpec)
    criteria = spec.rolloutCriteria
    found = cv.health(environment, product, version, at=at)
    return [
        plain(health_doc(found[name], criteria.healthyThreshold, criteria.unhealthyThreshold))
        for name in sorted(found)
    ]
