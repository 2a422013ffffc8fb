"""What every page shares: the templates, the form reader, the page renderer, the way to
/login, and what the visitor's grants allow."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from conveyor.engine.service import Conveyor
from conveyor.model.access import Role
from conveyor.web import session
from conveyor.web.gantt import gantt

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.globals["gantt"] = gantt
MAX_FIELDS = 20


async def form(request: Request, check_csrf: bool = True) -> dict[str, str]:
    """The posted form's fields; with `check_csrf`, refused unless it carries the session's
    CSRF token."""
    body = (await request.body()).decode("utf-8", errors="replace")
    fields = {k: v[0] for k, v in parse_qs(body, max_num_fields=MAX_FIELDS).items()}
    if check_csrf:
        session.check_csrf(request, fields.get("csrf", ""))
    return fields


def page(request: Request, template: str, cv: Conveyor | None, **context: Any) -> HTMLResponse:
    context |= {"me": cv.identity.user if cv else None, "csrf": session.csrf_token(request)}
    return templates.TemplateResponse(request, template, context)


class LoginFirst(Exception):
    """A page needs a logged-in visitor; answered by sending the browser to /login."""


def visitor(request: Request) -> Conveyor:
    """The logged-in visitor's Conveyor; LoginFirst when nobody (or an expired session) is."""
    cv = session.visitor(request)
    if cv is None:
        raise LoginFirst
    return cv


def to_login(request: Request, _exc: Exception | None = None) -> RedirectResponse:
    return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)


def back_to(path: str) -> RedirectResponse:
    return RedirectResponse(quote(path, safe="/@"), status_code=303)


def may(cv: Conveyor, role: Role, action: str, environment: str | None = None) -> bool:
    """Whether the visitor holds `role` over `environment`: a button is shown only then
    (the service checks again when it is pressed)."""
    return cv.allows(role, action)(environment)


def refused(request: Request, cv: Conveyor, error: str, back: str) -> HTMLResponse:
    """What a pressed button could not do, and the way back (400)."""
    answer = page(request, "message.html", cv, error=error, back=back)
    answer.status_code = 400
    return answer
