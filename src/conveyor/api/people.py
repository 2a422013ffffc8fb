"""Users and their groups, grants of roles, API tokens: an admin's (as `conveyor user`,
`grant` and `token`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi import Path as InPath
from pydantic import BaseModel, Field

from conveyor.api.app import Caller, caller
from conveyor.engine.service import Conveyor
from conveyor.errors import Forbidden
from conveyor.jsonstyle import plain
from conveyor.model.access import Role, Scope

router = APIRouter(tags=["people"])
# A row's number, as the store can hold it.
RowId = Annotated[int, InPath(ge=1, le=2**62)]


def admin(cv: Annotated[Conveyor, Depends(caller)]) -> Conveyor:
    """The caller's Conveyor, once it is known that they are an admin (the lists are theirs)."""
    if not cv.allows(Role.ADMIN, "see users, grants and tokens")(None):
        raise Forbidden(
            f"{cv.identity.user} may not see users, grants and tokens: that needs admin"
        )
    return cv


Admin = Annotated[Conveyor, Depends(admin)]


class NewUser(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    groups: list[str] = Field(default_factory=list)


class NewGrant(BaseModel):
    role: Role
    subject: str = Field(pattern=r"^(user|group):.+$", description="user:NAME or group:NAME")
    environments: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)


class NewToken(BaseModel):
    user: str
    days: int = Field(90, ge=1, le=3650)
    description: str = ""


@router.get("/users")
def users(cv: Admin) -> list[dict[str, Any]]:
    return [{"name": name, "groups": groups} for name, groups in cv.users()]


@router.post("/users", status_code=201)
def add_user(cv: Caller, body: NewUser) -> dict[str, Any]:
    cv.add_user(body.name, body.groups)
    return {"name": body.name, "groups": body.groups}


@router.delete("/users/{name}")
def remove_user(cv: Caller, name: str) -> dict[str, str]:
    cv.remove_user(name)
    return {"removed": name}


@router.get("/grants")
def grants(cv: Admin) -> list[dict[str, Any]]:
    return [
        {"id": g.id, "role": str(g.role), "subject": g.subject, "scope": str(g.scope)}
        for g in cv.grants()
    ]


@router.post("/grants", status_code=201)
def grant(cv: Caller, body: NewGrant) -> dict[str, Any]:
    scope = Scope(tuple(body.environments), tuple(sorted(body.labels.items())))
    grant_id = cv.grant(body.subject, body.role, scope)
    return {"id": grant_id, "role": body.role.value, "subject": body.subject, "scope": str(scope)}


@router.delete("/grants/{grant_id}")
def revoke(cv: Caller, grant_id: RowId) -> dict[str, int]:
    cv.revoke(grant_id)
    return {"revoked": grant_id}


@router.get("/tokens")
def tokens(cv: Admin) -> list[dict[str, Any]]:
    """The tokens (never the tokens themselves: only their hash is kept)."""
    return [
        plain(
            {
                "id": t.id,
                "user": t.user,
                "description": t.description,
                "createdAt": t.created_at,
                "expiresAt": t.expires_at,
                "revokedAt": t.revoked_at,
            }
        )
        for t in cv.tokens()
    ]


@router.post("/tokens", status_code=201)
def create_token(cv: Caller, body: NewToken) -> dict[str, Any]:
    """The token is in this answer once; keep it."""
    token_id, token = cv.create_token(body.user, timedelta(days=body.days), body.description)
    return {"id": token_id, "user": body.user, "token": token}


@router.delete("/tokens/{token_id}")
def revoke_token(cv: Caller, token_id: RowId) -> dict[str, int]:
    cv.revoke_token(token_id)
    return {"revoked": token_id}
