"""Who am I, what runs where, the audit trail, and health reports from reporters."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from conveyor.api.app import Caller, Reader
from conveyor.engine.healthbatch import HealthReportIn
from conveyor.jsonstyle import plain

router = APIRouter(tags=["observe"])

MAX_BATCH = 10_000


class HealthBatch(BaseModel):
    # Validated straight into the engine's records: no model per report to convert.
    reports: list[HealthReportIn] = Field(min_length=1, max_length=MAX_BATCH)


@router.get("/whoami")
def whoami(cv: Caller) -> dict[str, Any]:
    identity, groups, grants = cv.whoami()
    return {
        "user": identity.user,
        "groups": sorted(set(groups) | identity.groups),
        "grants": [{"id": g.id, "role": str(g.role), "scope": str(g.scope)} for g in grants],
    }


@router.get("/status")
def status(cv: Reader, product: str | None = None) -> Any:
    """What runs where, in the environments the caller has a role over."""
    looks = cv.looks_at()
    return plain([row for row in cv.status(product) if looks(row.environment)])


@router.get("/audit")
def audit_log(
    cv: Reader,
    release: str | None = None,
    environment: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    rows = cv.audit_log(release, environment, actor, since, min(max(limit, 1), 10_000))
    return [
        {
            "id": r.id,
            "at": plain(r.at),
            "actor": r.actor,
            "action": r.action,
            "subject": r.subject,
            "before": r.before,
            "after": r.after,
            "hash": r.hash,
        }
        for r in rows
    ]


@router.get("/audit/verify")
def audit_verify(cv: Reader) -> dict[str, Any]:
    count, problems = cv.verify_audit()
    return {"intact": not problems, "events": count, "problems": problems}


@router.post("/health/reports", status_code=201)
def report_health(cv: Caller, body: HealthReportIn | HealthBatch) -> dict[str, int]:
    """One report, or `{"reports": [...]}`, stored all or none in one transaction; each needs
    the reporter role over its environment."""
    reports = body.reports if isinstance(body, HealthBatch) else [body]
    stored = cv.report_health_batch(reports)
    return {"received": len(reports), "stored": stored}
