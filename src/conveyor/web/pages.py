"""The pages: log in, what runs where (home), a release with its environments and the
decisions a person may take there. Forms post back with a CSRF token."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from conveyor.engine.service import Conveyor
from conveyor.engine.view import ReleaseView, logs_text, node_of
from conveyor.errors import ConveyorError, NotFound, Unauthenticated
from conveyor.model.access import Role
from conveyor.web import session
from conveyor.web.common import back_to, form, may, page, refused, templates, visitor

router = APIRouter(include_in_schema=False)
LIVE_EVERY = 0.5  # seconds between looks at a release someone watches
LIVE_LOOKS = 1200  # ten minutes, then the browser reconnects


@router.get("/", response_model=None)
def home(request: Request) -> Response:
    cv = visitor(request)
    cv.may_look()
    return page(request, "home.html", cv, **_matrix(cv))


def _matrix(cv: Conveyor) -> dict[str, Any]:
    looks = cv.looks_at()
    rows = [row for row in cv.status() if looks(row.environment)]
    return {
        "products": sorted({r.product for r in rows}),
        "environments": list(dict.fromkeys(r.environment for r in rows)),
        "cells": {(r.product, r.environment): r for r in rows},
    }


@router.get("/events", response_model=None)
async def home_events(request: Request) -> Response:
    """The matrix, sent again whenever it changes (server-sent events)."""
    cv = await _watcher(request)
    fragment = templates.get_template("matrix.html")
    return _live(request, lambda: fragment.render(**_matrix(cv)))


@router.get("/releases/{ref}", response_model=None)
def release(request: Request, ref: str) -> Response:
    cv = visitor(request)
    cv.may_look()
    view = cv.show(ref)
    return page(
        request,
        "release.html",
        cv,
        view=view,
        ref=ref,
        may_decide=_deciding(cv.allows(Role.APPROVER, "approve"), view),
        may_act=may(cv, Role.PROMOTER, "change releases"),
    )


def _deciding(approves: Callable[[str | None], bool], view: ReleaseView) -> set[str]:
    """The environments where the caller may approve or reject now."""
    return {n.environment for n in view.nodes if n.state == "waiting" and approves(n.environment)}


@router.get("/releases/{ref}/{environment}/logs", response_model=None)
def logs(request: Request, ref: str, environment: str) -> Response:
    """One promotion's tasks and what they printed."""
    cv = visitor(request)
    cv.may_look(environment)
    text = logs_text(node_of(cv.show(ref), environment))
    return page(request, "logs.html", cv, ref=ref, environment=environment, text=text)


@router.get("/releases/{ref}/events", response_model=None)
async def release_events(request: Request, ref: str) -> Response:
    """The release view's changing part, sent again whenever it changes."""
    cv = await _watcher(request)
    csrf = session.csrf_token(request)
    fragment = templates.get_template("levels.html")
    # What the visitor may do is read once per stream, not on every look.
    acting = await run_in_threadpool(may, cv, Role.PROMOTER, "change releases")
    approves = await run_in_threadpool(cv.allows, Role.APPROVER, "approve")

    def render() -> str:
        view = cv.show(ref)
        deciding = _deciding(approves, view)
        return fragment.render(view=view, ref=ref, may_decide=deciding, may_act=acting, csrf=csrf)

    return _live(request, render)


async def _watcher(request: Request) -> Conveyor:
    cv = session.visitor(request)
    if cv is None:
        raise Unauthenticated("log in first")
    await run_in_threadpool(cv.may_look)
    return cv


def _live(request: Request, render: Callable[[], str]) -> StreamingResponse:
    """Server-sent events: `render()` every LIVE_EVERY seconds, sent when it changed. The
    stream ends after LIVE_LOOKS looks; the browser's EventSource reconnects."""

    async def stream() -> AsyncIterator[str]:
        last = ""
        for _ in range(LIVE_LOOKS):
            if await request.is_disconnected():
                return
            html = await run_in_threadpool(render)
            if html != last:
                yield "event: update\ndata: " + html.replace("\n", "\ndata: ") + "\n\n"
                last = html
            await asyncio.sleep(LIVE_EVERY)

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


@router.post("/releases/{ref}/{action}", response_model=None)
async def act(request: Request, ref: str, action: str) -> Response:
    """Retry, Terminate or Recall (with a reason), as `conveyor release ACTION`."""
    cv = visitor(request)
    reason = (await form(request)).get("reason", "")
    calls = {
        "retry": lambda: cv.retry(ref),
        "terminate": lambda: cv.terminate(ref),
        "recall": lambda: cv.recall(ref, reason),
    }
    try:
        if action not in calls:
            raise NotFound(f"no action '{action}' on a release: retry, terminate or recall")
        await run_in_threadpool(calls[action])
    except ConveyorError as exc:
        return refused(request, cv, str(exc), f"/releases/{ref}")
    return back_to(f"/releases/{ref}")


@router.post("/releases/{ref}/{environment}/{verdict}", response_model=None)
async def decide(request: Request, ref: str, environment: str, verdict: str) -> Response:
    cv = visitor(request)
    comment = (await form(request)).get("comment", "")
    try:
        if verdict == "approve":
            await run_in_threadpool(cv.approve, f"{ref}/{environment}", comment)
        elif verdict == "reject":
            await run_in_threadpool(cv.reject, f"{ref}/{environment}", comment)
        else:
            raise ConveyorError(f"unknown decision '{verdict}': approve or reject")
    except ConveyorError as exc:
        view = await run_in_threadpool(cv.show, ref)
        refused = page(
            request, "release.html", cv, view=view, ref=ref, may_decide=set(), error=str(exc)
        )
        refused.status_code = 400
        return refused
    return back_to(f"/releases/{ref}")
