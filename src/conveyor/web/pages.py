"""The pages: log in, what runs where (home), a release with its environments and the
decisions a person may take there. Forms post back with a CSRF token."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from conveyor.api.app import Server
from conveyor.engine.service import Conveyor
from conveyor.engine.view import ReleaseView
from conveyor.errors import ConveyorError, Unauthenticated
from conveyor.model.access import Need, Role, permits
from conveyor.web import session

router = APIRouter(include_in_schema=False)
LIVE_EVERY = 0.5  # seconds between looks at a release someone watches
LIVE_LOOKS = 1200  # ten minutes, then the browser reconnects
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


async def _form(request: Request) -> dict[str, str]:
    body = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[0] for k, v in parse_qs(body, max_num_fields=20).items()}


def _page(request: Request, name: str, cv: Conveyor | None, **context: Any) -> HTMLResponse:
    context |= {"me": cv.identity.user if cv else None, "csrf": session.csrf_token(request)}
    return templates.TemplateResponse(request, name, context)


def _login(request: Request) -> RedirectResponse:
    return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)


@router.get("/login")
def login_form(request: Request, next: str = "/") -> HTMLResponse:
    return _page(request, "login.html", None, next=next if next.startswith("/") else "/")


@router.post("/login")
async def login(request: Request) -> Response:
    form = await _form(request)
    token = form.get("token", "").strip()
    target = form.get("next", "/")
    server: Server = request.app.state.server
    try:
        await run_in_threadpool(server.acting, token)
    except Unauthenticated as exc:
        page = _page(request, "login.html", None, next=target, error=str(exc))
        page.status_code = 401
        return page
    answer = RedirectResponse(target if target.startswith("/") else "/", status_code=303)
    session.start(answer, token, secure=request.url.scheme == "https")
    return answer


@router.post("/logout")
async def logout(request: Request) -> Response:
    session.check_csrf(request, (await _form(request)).get("csrf", ""))
    answer = RedirectResponse("/login", status_code=303)
    session.end(answer)
    return answer


@router.get("/", response_model=None)
def home(request: Request) -> Response:
    cv = session.visitor(request)
    if cv is None:
        return _login(request)
    cv.may_look()
    rows = cv.status()
    products = sorted({r.product for r in rows})
    environments = list(dict.fromkeys(r.environment for r in rows))
    cells = {(r.product, r.environment): r for r in rows}
    return _page(
        request, "home.html", cv, products=products, environments=environments, cells=cells
    )


@router.get("/releases/{ref}", response_model=None)
def release(request: Request, ref: str) -> Response:
    cv = session.visitor(request)
    if cv is None:
        return _login(request)
    cv.may_look()
    view = cv.show(ref)
    return _page(request, "release.html", cv, view=view, ref=ref, may_decide=_deciding(cv, view))


def _deciding(cv: Conveyor, view: ReleaseView) -> set[str]:
    """The environments where the caller may approve or reject now."""
    _, _, grants = cv.whoami()
    return {
        n.environment
        for n in view.nodes
        if n.state == "waiting" and permits(grants, Need(Role.APPROVER, "approve", n.environment))
    }


@router.get("/releases/{ref}/events", response_model=None)
async def release_events(request: Request, ref: str) -> Response:
    """The release view's changing part, sent again whenever it changes (server-sent
    events). The stream ends after LIVE_LOOKS looks; the browser's EventSource reconnects."""
    cv = session.visitor(request)
    if cv is None:
        raise Unauthenticated("log in first")
    await run_in_threadpool(cv.may_look)
    csrf = session.csrf_token(request)
    fragment = templates.get_template("levels.html")

    async def stream() -> AsyncIterator[str]:
        last = ""
        for _ in range(LIVE_LOOKS):
            if await request.is_disconnected():
                return
            view = await run_in_threadpool(cv.show, ref)
            deciding = await run_in_threadpool(_deciding, cv, view)
            html = fragment.render(view=view, ref=ref, may_decide=deciding, csrf=csrf)
            if html != last:
                yield "event: levels\ndata: " + html.replace("\n", "\ndata: ") + "\n\n"
                last = html
            await asyncio.sleep(LIVE_EVERY)

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


@router.post("/releases/{ref}/{environment}/{verdict}", response_model=None)
async def decide(request: Request, ref: str, environment: str, verdict: str) -> Response:
    cv = session.visitor(request)
    if cv is None:
        return _login(request)
    form = await _form(request)
    session.check_csrf(request, form.get("csrf", ""))
    comment = form.get("comment", "")
    try:
        if verdict == "approve":
            await run_in_threadpool(cv.approve, f"{ref}/{environment}", comment)
        elif verdict == "reject":
            await run_in_threadpool(cv.reject, f"{ref}/{environment}", comment)
        else:
            raise ConveyorError(f"unknown decision '{verdict}': approve or reject")
    except ConveyorError as exc:
        view = await run_in_threadpool(cv.show, ref)
        page = _page(
            request, "release.html", cv, view=view, ref=ref, may_decide=set(), error=str(exc)
        )
        page.status_code = 400
        return page
    return RedirectResponse(f"/releases/{quote(ref)}", status_code=303)
