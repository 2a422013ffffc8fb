"""Browser sessions: the API token a person logged in with, kept in an HttpOnly cookie, and
a CSRF token (double submit) that every form posts back."""

from __future__ import annotations

import hmac
import secrets

from fastapi import Request, Response

from conveyor.api.app import Server
from conveyor.engine.service import Conveyor
from conveyor.errors import Forbidden, Unauthenticated

SESSION = "conveyor_session"
CSRF = "conveyor_csrf"


LIFETIME = 12 * 3600  # seconds: a working day, then log in again


def start(response: Response, token: str, secure: bool) -> None:
    for name, value in ((SESSION, token), (CSRF, secrets.token_urlsafe(32))):
        response.set_cookie(
            name, value, max_age=LIFETIME, httponly=True, samesite="lax", secure=secure, path="/"
        )


def end(response: Response) -> None:
    response.delete_cookie(SESSION, path="/")
    response.delete_cookie(CSRF, path="/")


def visitor(request: Request) -> Conveyor | None:
    """The logged-in person's Conveyor, or None (the page sends them to /login)."""
    token = request.cookies.get(SESSION)
    if not token:
        return None
    server: Server = request.app.state.server
    try:
        return server.acting(token)
    except Unauthenticated:
        return None


def csrf_token(request: Request) -> str:
    return request.cookies.get(CSRF, "")


def check_csrf(request: Request, posted: str) -> None:
    expected = csrf_token(request)
    if not expected or not hmac.compare_digest(expected, posted):
        raise Forbidden("the form's CSRF token does not match this session: reload the page")
