"""Definitions: apply a multi-document YAML body (all or nothing, with file/line errors as
`conveyor apply` gives them), list, get, revisions with diffs, delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from starlette.concurrency import run_in_threadpool

from conveyor.api.app import Caller, Reader
from conveyor.engine.resources import Current
from conveyor.engine.revisions import diff
from conveyor.engine.service import Conveyor
from conveyor.errors import DefinitionError, NotFound, PreconditionFailed
from conveyor.jsonstyle import plain
from conveyor.model.kinds import canonical_kind
from conveyor.spec import load_text

router = APIRouter(tags=["definitions"])

MAX_BODY = 4 * 1024 * 1024


def etag(c: Current) -> str:
    return f'"{c.kind}/{c.name}/{c.revision}"'


def _check_match(cv: Conveyor, if_match: str | None, kind: str, name: str) -> None:
    """With If-Match (the ETag a GET gave), refuse a write over a newer revision."""
    if if_match is None:
        return
    try:
        current = etag(cv.get(kind, name)[0])
    except NotFound:
        current = None
    if if_match.strip() == "*" and current is not None:
        return
    if current != if_match.strip():
        raise PreconditionFailed(
            f"{kind}/{name} changed since it was read (now {current or 'absent'}, "
            f"If-Match {if_match.strip()}): get it again, merge, and retry"
        )


def _doc(c: Current) -> dict[str, Any]:
    return {
        "kind": c.kind,
        "name": c.name,
        "revision": c.revision,
        "appliedBy": c.applied_by,
        "appliedAt": plain(c.applied_at),
        "document": c.document,
    }


@router.post(
    "/definitions",
    openapi_extra={
        "requestBody": {"content": {"application/yaml": {"schema": {"type": "string"}}}}
    },
)
async def apply(
    cv: Caller, request: Request, if_match: Annotated[str | None, Header()] = None
) -> list[dict[str, str]]:
    """Apply the YAML documents of the body (`---` between them), like `conveyor apply`.
    With If-Match, the body must be one document, still at the revision the ETag names."""
    body = await request.body()
    if len(body) > MAX_BODY:
        raise DefinitionError(f"the body is over {MAX_BODY // 1024 // 1024} MiB: split it")
    docs = load_text(body.decode("utf-8", errors="replace"), "<request>")
    if if_match is not None:
        if len(docs) != 1 or not isinstance(docs[0].data, dict):
            raise DefinitionError("If-Match needs a body of exactly one document")
        data = docs[0].data
        kind, name = str(data.get("kind", "")), str((data.get("metadata") or {}).get("name", ""))
        await run_in_threadpool(_check_match, cv, if_match, canonical_kind(kind), name)
    applied = await run_in_threadpool(cv.apply, docs=docs)
    return [{"ref": d.ref, "result": what} for d, what in applied]


@router.get("/definitions/{kind}")
def list_definitions(cv: Reader, kind: str) -> list[dict[str, Any]]:
    return [_doc(c) for c in cv.get(kind)]


@router.get("/definitions/{kind}/{name}")
def get_definition(cv: Reader, kind: str, name: str, response: Response) -> dict[str, Any]:
    """One definition's current revision; its ETag guards a later write (If-Match)."""
    current = cv.get(kind, name)[0]
    response.headers["ETag"] = etag(current)
    return _doc(current)


@router.get("/definitions/{kind}/{name}/revisions")
def list_revisions(cv: Reader, kind: str, name: str) -> list[dict[str, Any]]:
    """Every revision, oldest first, each with its document and the diff from the one before."""
    found = cv.revisions(kind, name)
    return [
        {
            "revision": r.revision,
            "deleted": r.deleted,
            "appliedBy": r.applied_by,
            "appliedAt": plain(r.applied_at),
            "document": r.document,
            "diff": diff(found[i - 1] if i else None, r, f"{kind}/{name}"),
        }
        for i, r in enumerate(found)
    ]


@router.delete("/definitions/{kind}/{name}")
def delete_definition(
    cv: Caller, kind: str, name: str, if_match: Annotated[str | None, Header()] = None
) -> dict[str, Any]:
    _check_match(cv, if_match, canonical_kind(kind), name)
    return {"deleted": f"{kind}/{name}", "revision": cv.delete(kind, name)}
