"""The approvals inbox, the audit log with its verification, and the settings (users,
grants, API tokens) an admin keeps."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from conveyor.engine.service import Conveyor
from conveyor.errors import ConveyorError, Forbidden, NotFound
from conveyor.model.access import Role, Scope, parse_role
from conveyor.web.common import back_to, form, may, page, refused, visitor

router = APIRouter(include_in_schema=False)
AUDIT_LIMIT = 200
TOKEN_LIFETIME = timedelta(days=90)


@router.get("/approvals", response_model=None)
def approvals(request: Request) -> Response:
    cv = visitor(request)
    cv.may_look()
    waiting = [(p, p.rsplit("/", 1)[0], what, since) for p, what, since in cv.approvals()]
    return page(request, "approvals.html", cv, waiting=waiting)


@router.get("/audit", response_model=None)
def audit(
    request: Request,
    release: str | None = None,
    environment: str | None = None,
    actor: str | None = None,
    verify: bool = False,
) -> Response:
    """The trail, newest first; with `verify`, its verification too (it reads every event,
    and a broken trail records that it was found so: on demand, not on every view)."""
    cv = visitor(request)
    cv.may_look()
    events = cv.audit_log(release or None, environment or None, actor or None, None, AUDIT_LIMIT)
    count, problems = cv.verify_audit() if verify else (None, [])
    filters = {"release": release or "", "environment": environment or "", "actor": actor or ""}
    return page(
        request,
        "audit.html",
        cv,
        events=list(reversed(events)),
        count=count,
        problems=problems,
        filters=filters,
        limit=AUDIT_LIMIT,
    )


@router.get("/settings", response_model=None)
def settings(request: Request) -> Response:
    cv = visitor(request)
    return _settings(request, cv)


def _settings(request: Request, cv: Conveyor, new_token: str = "") -> Response:
    if not may(cv, Role.ADMIN, "keep settings"):
        raise Forbidden(f"{cv.identity.user} may not see the settings: that needs admin")
    return page(
        request,
        "settings.html",
        cv,
        users=cv.users(),
        grants=cv.grants(),
        tokens=cv.tokens(),
        roles=[r.value for r in Role],
        new_token=new_token,
    )


@router.post("/settings/{what}", response_model=None)
async def change(request: Request, what: str) -> Response:
    """Add a user, grant a role, create or revoke a token, as the CLI's commands do."""
    cv = visitor(request)
    fields = await form(request)
    try:
        if what == "users":
            groups = [g.strip() for g in fields.get("groups", "").split(",") if g.strip()]
            await run_in_threadpool(cv.add_user, fields.get("name", "").strip(), groups)
        elif what == "grants":
            role = parse_role(fields.get("role", ""))
            names = tuple(e.strip() for e in fields.get("environments", "").split(",") if e.strip())
            await run_in_threadpool(cv.grant, fields.get("subject", ""), role, Scope(names))
        elif what == "tokens":
            user, description = fields.get("user", ""), fields.get("description", "")
            _, token = await run_in_threadpool(cv.create_token, user, TOKEN_LIFETIME, description)
            # Shown once, in this answer only: never in a URL, a log or a redirect.
            return await run_in_threadpool(_settings, request, cv, token)
        elif what == "revoke":
            token_id = int(fields.get("token", "0"))
            if not 0 < token_id < 2**62:
                raise ValueError(f"no token {token_id}")
            await run_in_threadpool(cv.revoke_token, token_id)
        else:
            raise NotFound(f"no setting '{what}': users, grants, tokens or revoke")
    except (ConveyorError, ValueError) as exc:
        return refused(request, cv, str(exc), "/settings")
    return back_to("/settings")
