"""Definitions: apply a multi-document YAML body (all or nothing, with file/line errors as
`conveyor apply` gives them), list, get, delete."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from conveyor.api.app import Caller, Reader
from conveyor.engine.resources import Current
from conveyor.errors import DefinitionError
from conveyor.jsonstyle import plain
from conveyor.spec import load_text

router = APIRouter(tags=["definitions"])

MAX_BODY = 4 * 1024 * 1024


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
async def apply(cv: Caller, request: Request) -> list[dict[str, str]]:
    """Apply the YAML documents of the body (`---` between them), like `conveyor apply`."""
    body = await request.body()
    if len(body) > MAX_BODY:
        raise DefinitionError(f"the body is over {MAX_BODY // 1024 // 1024} MiB: split it")
    text = body.decode("utf-8", errors="replace")
    applied = await run_in_threadpool(cv.apply, docs=load_text(text, "<request>"))
    return [{"ref": d.ref, "result": what} for d, what in applied]


@router.get("/definitions/{kind}")
def list_definitions(cv: Reader, kind: str) -> list[dict[str, Any]]:
    return [_doc(c) for c in cv.get(kind)]


@router.get("/definitions/{kind}/{name}")
def get_definition(cv: Reader, kind: str, name: str) -> dict[str, Any]:
    return _doc(cv.get(kind, name)[0])


@router.delete("/definitions/{kind}/{name}")
def delete_definition(cv: Caller, kind: str, name: str) -> dict[str, Any]:
    return {"deleted": f"{kind}/{name}", "revision": cv.delete(kind, name)}
