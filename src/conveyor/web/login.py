"""Logging in to the pages: a local user's password (the session is a 12-hour token,
revoked on logout), an API token, or an OIDC issuer's login (authorization code with PKCE:
the session is the ID token, checked on every request like a bearer token)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from typing import Any
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from conveyor.api.app import Server
from conveyor.engine.jwtauth import TIMEOUT, Issuer, Verifier
from conveyor.errors import Unauthenticated
from conveyor.web import session
from conveyor.web.common import form, page

router = APIRouter(include_in_schema=False)
FLOW_COOKIE = "conveyor_oidc"  # state, PKCE verifier, nonce: only between leaving and returning
FLOW_LIFETIME = 600  # seconds to log in at the issuer


def s256(verifier: str) -> str:
    """RFC 7636's S256 code challenge: BASE64URL(SHA256(verifier)), unpadded."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def safe_next(target: str) -> str:
    """Where to go after logging in: a path on this server only (`//host` is another site)."""
    ok = target.startswith("/") and not target.startswith("//") and "\\" not in target
    return target if ok else "/"


def _issuer(request: Request) -> tuple[Verifier, Issuer] | None:
    """The first configured issuer people may log in with."""
    server: Server = request.app.state.server
    verifier = server.gate.oidc()
    if verifier is None:
        return None
    found = next((i for i in verifier.issuers.values() if i.login is not None), None)
    return (verifier, found) if found is not None else None


def _login_page(request: Request, target: str, error: str = "", status: int = 200) -> Response:
    answer = page(
        request,
        "login.html",
        None,
        next=safe_next(target),
        sso=_issuer(request) is not None,
        error=error,
    )
    answer.status_code = status
    return answer


@router.get("/login")
def login_form(request: Request, next: str = "/") -> Response:
    return _login_page(request, next)


@router.post("/login")
async def login(request: Request) -> Response:
    # No CSRF token here: there is no session yet to ride on.
    fields = await form(request, check_csrf=False)
    target = safe_next(fields.get("next", "/"))
    server: Server = request.app.state.server
    try:
        if fields.get("user"):
            token = await run_in_threadpool(
                server.gate.open_session, fields["user"].strip(), fields.get("password", "")
            )
        else:
            token = fields.get("token", "").strip()
            await run_in_threadpool(server.acting, token)
    except Unauthenticated as exc:
        return _login_page(request, target, str(exc), 401)
    answer = RedirectResponse(target, status_code=303)
    session.start(answer, token, secure=request.url.scheme == "https")
    return answer


@router.post("/logout")
async def logout(request: Request) -> Response:
    await form(request)
    token = request.cookies.get(session.SESSION, "")
    server: Server = request.app.state.server
    if token:  # a password login's token ends here; API tokens and ID tokens are left be
        await run_in_threadpool(server.gate.close_session, token)
    answer = RedirectResponse("/login", status_code=303)
    session.end(answer)
    return answer


def _callback(request: Request) -> str:
    server: Server = request.app.state.server
    base = server.base_url or str(request.base_url).rstrip("/")
    return f"{base}/login/oidc/callback"


@router.get("/login/oidc", response_model=None)
def oidc_start(request: Request, next: str = "/") -> Response:
    """Off to the issuer, with a fresh state, nonce and PKCE verifier kept in a cookie."""
    found = _issuer(request)
    if found is None:
        return _login_page(request, next, "no OIDC issuer is set up for logging in", 404)
    verifier, issuer = found
    assert issuer.login is not None
    authorize, _ = verifier.endpoints(issuer)
    flow = {
        "state": secrets.token_urlsafe(24),
        "nonce": secrets.token_urlsafe(24),
        "verifier": secrets.token_urlsafe(48),  # 64 characters: RFC 7636 wants 43 to 128
        "next": safe_next(next),
    }
    query = {
        "response_type": "code",
        "client_id": issuer.login.clientId,
        "redirect_uri": _callback(request),
        "scope": " ".join(issuer.login.scopes),
        "state": flow["state"],
        "nonce": flow["nonce"],
        "code_challenge": s256(flow["verifier"]),
        "code_challenge_method": "S256",
    }
    answer = RedirectResponse(f"{authorize}?{urlencode(query)}", status_code=303)
    answer.set_cookie(
        FLOW_COOKIE,
        base64.urlsafe_b64encode(json.dumps(flow).encode()).decode(),
        max_age=FLOW_LIFETIME,
        httponly=True,
        samesite="lax",  # the issuer sends the browser back with a top-level GET
        secure=request.url.scheme == "https",
        path="/login/oidc",
    )
    return answer


@router.get("/login/oidc/callback", response_model=None)
def oidc_callback(request: Request, code: str = "", state: str = "", error: str = "") -> Response:
    """Back from the issuer: check the state, trade the code (with the PKCE verifier) for
    an ID token, check it and its nonce; the ID token is then the session."""
    flow = _flow(request)
    target = str(flow.get("next", "/"))
    found = _issuer(request)
    if error or found is None:
        return _login_page(request, target, f"the issuer refused the login: {error}", 401)
    if not state or state != flow.get("state") or not code:
        return _login_page(request, target, "the login expired or was not started here", 401)
    verifier, issuer = found
    assert issuer.login is not None
    _, token_endpoint = verifier.endpoints(issuer)
    secret_env = issuer.login.clientSecretEnv
    secret = os.environ.get(secret_env) if secret_env else None
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": _callback(request),
        "client_id": issuer.login.clientId,
        "code_verifier": str(flow.get("verifier", "")),
    }
    auth = (issuer.login.clientId, secret) if secret else None  # client_secret_basic
    try:
        answer = httpx.post(token_endpoint, data=form, auth=auth, timeout=TIMEOUT)
        answer.raise_for_status()
        id_token = str(answer.json().get("id_token", ""))
        verifier.identify(id_token, nonce=str(flow.get("nonce")))
    except Unauthenticated as exc:
        return _login_page(request, target, str(exc), 401)
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        # Say what failed, never the code or a token.
        why = f"the issuer's token endpoint failed: {type(exc).__name__}"
        return _login_page(request, target, why, 401)
    done = RedirectResponse(target, status_code=303)
    session.start(done, id_token, secure=request.url.scheme == "https")
    done.delete_cookie(FLOW_COOKIE, path="/login/oidc")
    return done


def _flow(request: Request) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(request.cookies.get(FLOW_COOKIE, "").encode())
        flow = json.loads(raw or b"{}")
    except (ValueError, json.JSONDecodeError):
        return {}
    return flow if isinstance(flow, dict) else {}
