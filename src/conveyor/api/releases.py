"""Releases and promotions: create, read, trigger, label, retry, terminate, recall, roll
back, approve and reject; the approvals waiting for the caller."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from conveyor.api.app import Caller, Reader
from conveyor.clock import utc
from conveyor.jsonstyle import plain, release_doc

router = APIRouter(tags=["releases"])


class NewRelease(BaseModel):
    product: str
    version: str
    artifacts: dict[str, str] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)


class Trigger(BaseModel):
    flow: str


class Labels(BaseModel):
    set: dict[str, str] = Field(default_factory=dict)
    remove: list[str] = Field(default_factory=list)


class Reason(BaseModel):
    reason: str = Field(min_length=1)


class Decision(BaseModel):
    comment: str = ""


class Rollback(BaseModel):
    to: str
    revert: bool = False


@router.get("/releases")
def list_releases(
    cv: Reader,
    request: Request,
    response: Response,
    product: str | None = None,
    status: str | None = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[dict[str, Any]]:
    """Releases oldest first, filtered, a page at a time: `X-Total-Count` says how many
    match, `Link: <...>; rel="next"` where the next page is."""
    start = utc(since) if since else None  # without a zone: UTC
    rows = [
        r
        for r in cv.list_releases(product)
        if (status is None or r.status == status) and (start is None or utc(r.created_at) >= start)
    ]
    response.headers["X-Total-Count"] = str(len(rows))
    if offset + limit < len(rows):
        after = request.url.include_query_params(offset=offset + limit, limit=limit)
        response.headers["Link"] = f'<{after}>; rel="next"'
    return [release_doc(r) for r in rows[offset : offset + limit]]


@router.post("/releases", status_code=201)
def create_release(cv: Caller, body: NewRelease) -> dict[str, Any]:
    return release_doc(cv.create_release(body.product, body.version, body.artifacts, body.labels))


@router.get("/releases/{ref}")
def show_release(cv: Reader, ref: str) -> Any:
    return plain(cv.show(ref))


@router.post("/releases/{ref}/trigger")
def trigger(cv: Caller, ref: str, body: Trigger) -> dict[str, Any]:
    return release_doc(cv.trigger(body.flow, ref))


@router.post("/releases/{ref}/labels")
def label(cv: Caller, ref: str, body: Labels) -> Any:
    cv.label(ref, body.set, body.remove)
    return plain(cv.show(ref))


@router.post("/releases/{ref}/retry")
def retry(cv: Caller, ref: str) -> dict[str, Any]:
    return {"retried": cv.retry(ref)}


@router.post("/releases/{ref}/terminate")
def terminate(cv: Caller, ref: str) -> dict[str, Any]:
    cv.terminate(ref)
    return {"terminated": ref}


@router.post("/releases/{ref}/recall")
def recall(cv: Caller, ref: str, body: Reason) -> dict[str, Any]:
    return {"recalled": cv.recall(ref, body.reason)}


@router.post("/environments/{environment}/rollback", status_code=202)
def rollback(cv: Caller, environment: str, body: Rollback) -> dict[str, Any]:
    p = cv.rollback(environment, body.to, body.revert)
    return {"environment": environment, "node": p.node, "state": p.state}


@router.post("/promotions/{ref}/{environment}/approve")
def approve(cv: Caller, ref: str, environment: str, body: Decision) -> dict[str, str]:
    cv.approve(f"{ref}/{environment}", body.comment)
    return {"approved": f"{ref}/{environment}"}


@router.post("/promotions/{ref}/{environment}/reject")
def reject(cv: Caller, ref: str, environment: str, body: Decision) -> dict[str, str]:
    cv.reject(f"{ref}/{environment}", body.comment)
    return {"rejected": f"{ref}/{environment}"}


@router.get("/approvals")
def approvals(cv: Reader) -> list[dict[str, Any]]:
    return [{"promotion": p, "waiting": w, "since": plain(t)} for p, w, t in cv.approvals()]
