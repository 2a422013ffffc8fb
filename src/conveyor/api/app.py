"""The FastAPI application: who calls (bearer tokens), health of the process, the routers.

Each request acts through its own `Conveyor` under the caller's identity, on the one store
the server opened; the service checks each write's role, `Conveyor.may_look` each read's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy import text

from conveyor import __version__
from conveyor.api import problems
from conveyor.clock import Clock
from conveyor.engine.registry import Registry
from conveyor.engine.service import Conveyor
from conveyor.errors import ConveyorError, Unauthenticated
from conveyor.store.db import Store

API = "/api/v1"


@dataclass
class Server:
    store: Store
    clock: Clock
    registry: Registry
    workdir: Path
    # Whether the engine serving this process is up (None: no engine in this process).
    engine_alive: Callable[[], bool] | None = None
    # How people reach the server (behind a proxy, for OIDC's redirect); None: as asked.
    base_url: str | None = None

    def __post_init__(self) -> None:
        # Identifies callers; keeps the OIDC keys it fetched between requests.
        self.gate = Conveyor(self.store, self.clock, self.registry, "server", self.workdir)

    def acting(self, token: str) -> Conveyor:
        identity = self.gate.identify(token)
        return Conveyor(self.store, self.clock, self.registry, identity, self.workdir)


def caller(request: Request) -> Conveyor:
    """The caller's Conveyor, from `Authorization: Bearer TOKEN` (an API token or OIDC)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(
            "send Authorization: Bearer TOKEN (`conveyor token create USER` makes one)"
        )
    server: Server = request.app.state.server
    return server.acting(token.strip())


def reader(cv: Annotated[Conveyor, Depends(caller)]) -> Conveyor:
    """The caller's Conveyor, once it is known that they may look."""
    cv.may_look()
    return cv


Caller = Annotated[Conveyor, Depends(caller)]
Reader = Annotated[Conveyor, Depends(reader)]


def create_app(server: Server) -> FastAPI:
    from conveyor.api import definitions, observe, people, places, releases

    app = FastAPI(
        title="Conveyor",
        version=__version__,
        openapi_url=f"{API}/openapi.json",
        # Swagger UI and ReDoc load their scripts from a CDN: no page fetches anything from
        # outside the server.
        docs_url=None,
        redoc_url=None,
    )
    app.state.server = server
    app.add_exception_handler(ConveyorError, problems.from_error)
    app.add_exception_handler(RequestValidationError, problems.from_validation)
    for module in (definitions, releases, places, observe, people):
        app.include_router(module.router, prefix=API)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False, response_model=None)
    def readyz() -> JSONResponse | dict[str, str]:
        try:
            with server.store.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as exc:  # the database is away: not ready, and say why
            return problems.problem(503, "not-ready", "Not ready", f"database: {exc}")
        if server.engine_alive is not None and not server.engine_alive():
            return problems.problem(503, "not-ready", "Not ready", "the engine is not running")
        return {"status": "ready"}

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> PlainTextResponse:
        return PlainTextResponse(
            server.gate.metrics(with_process=True), media_type="text/plain; version=0.0.4"
        )

    return app
