"""Errors as RFC 9457 problem details: one table maps Conveyor's exceptions to statuses."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from conveyor.errors import (
    ActionError,
    AuditBroken,
    Conflict,
    ConveyorError,
    DefinitionError,
    Forbidden,
    NotFound,
    PreconditionFailed,
    Unauthenticated,
)

TYPE_BASE = "https://conveyor.dev/problems/"

# The first class an error is an instance of decides (subclasses before their parents).
STATUSES: list[tuple[type[ConveyorError], int, str, str]] = [
    (DefinitionError, 422, "invalid-definition", "The input is not valid"),
    (NotFound, 404, "not-found", "Not found"),
    (PreconditionFailed, 412, "precondition-failed", "Changed since it was read"),
    (Conflict, 409, "conflict", "Conflicts with the current state"),
    (Unauthenticated, 401, "unauthenticated", "Who calls is not known"),
    (Forbidden, 403, "forbidden", "Not allowed"),
    (AuditBroken, 500, "audit-broken", "The audit trail cannot be trusted"),
    (ActionError, 502, "action-failed", "An action failed"),
    (ConveyorError, 400, "bad-request", "Bad request"),
]


def problem(status: int, slug: str, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": TYPE_BASE + slug, "title": title, "status": status, "detail": detail, **extra}
    headers = {"WWW-Authenticate": 'Bearer realm="conveyor"'} if status == 401 else None
    return JSONResponse(body, status, headers=headers, media_type="application/problem+json")


def describe(exc: ConveyorError) -> tuple[int, str, str]:
    """(status, slug, title) of an error, from the table."""
    return next((s, k, t) for cls, s, k, t in STATUSES if isinstance(exc, cls))


def from_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ConveyorError)
    status, slug, title = describe(exc)
    extra: dict[str, Any] = {}
    if isinstance(exc, DefinitionError):
        extra["problems"] = [
            {
                "file": p.file,
                "line": p.line,
                "field": p.field,
                "resource": p.resource,
                "message": p.message,
            }
            for p in exc.problems
        ]
    return problem(status, slug, title, str(exc), **extra)


def from_validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()
    ]
    detail = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    return problem(422, "invalid-request", "The request is not valid", detail, problems=problems)
