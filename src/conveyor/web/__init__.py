"""Conveyor in the browser: server-rendered pages (Jinja2) beside the API."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles

from conveyor.errors import ConveyorError


def add_pages(app: FastAPI) -> None:
    """The pages and their one stylesheet, on an app `conveyor.api.create_app` made."""
    from conveyor.web import flows, insight, lists, login, pages, products
    from conveyor.web.common import LoginFirst, to_login

    for module in (login, pages, flows, products, insight, lists):
        app.include_router(module.router)
    app.add_exception_handler(ConveyorError, _html_or_problem)
    app.add_exception_handler(LoginFirst, to_login)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")


def _html_or_problem(request: Request, exc: Exception) -> Response:
    """A page's error as a page (a browser asked); the API's as problem details."""
    from conveyor.api.app import API
    from conveyor.api.problems import describe, from_error
    from conveyor.web import session
    from conveyor.web.common import page

    assert isinstance(exc, ConveyorError)
    wants_page = "text/html" in request.headers.get("accept", "")
    if request.url.path.startswith(API) or not wants_page:
        return from_error(request, exc)
    status, _, title = describe(exc)
    answer = page(
        request, "message.html", session.visitor(request), title=title, error=str(exc), back="/"
    )
    answer.status_code = status
    return answer
