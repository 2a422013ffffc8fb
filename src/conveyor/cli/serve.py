"""`conveyor serve`: the REST API and the engine in one process."""

from __future__ import annotations

import gc
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.cli.common import cv_of, out

if TYPE_CHECKING:
    from conveyor.engine.service import Conveyor


GRACE = 10  # seconds


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Where to listen.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="The port to listen on.")] = 8080,
    no_engine: Annotated[
        bool, typer.Option("--no-engine", help="Serve the API only: engines run elsewhere.")
    ] = False,
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", help="A PEM certificate: serve https.")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="Its PEM private key.")] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url",
            metavar="URL",
            help="How people reach this server (behind a proxy): OIDC login returns there.",
        ),
    ] = None,
) -> None:
    """Serve the REST API (/api/v1, OpenAPI at /api/v1/openapi.json), /healthz, /readyz and
    /metrics, with the engine in the same process unless --no-engine. Ctrl-C or SIGTERM:
    requests in flight finish, the engine hands its lease back.

    \b
    Example:
      conveyor --db /var/lib/conveyor/conveyor.db serve --host 0.0.0.0 --port 8080
    """
    run_server(cv_of(ctx), host, port, not no_engine, tls_cert, tls_key, base_url)


def run_server(
    cv: Conveyor,
    host: str,
    port: int,
    with_engine: bool = True,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    base_url: str | None = None,
) -> None:
    """Serve `cv`'s store until interrupted (also for `conveyor demo --serve`)."""
    import uvicorn

    from conveyor.api.app import Server, create_app
    from conveyor.cli import remote_exec
    from conveyor.engine.delivery import Deliverer
    from conveyor.web import add_pages

    engine: threading.Thread | None = None
    notifications = Deliverer(cv.store, cv.clock)
    if with_engine:
        # Standby: beside another engine on the same database, take over when it stops.
        engine = threading.Thread(
            target=cv.engine.serve, kwargs={"standby": True}, name="engine", daemon=True
        )
    alive = engine.is_alive if engine is not None else None
    base = base_url.rstrip("/") if base_url else None
    app = create_app(Server(cv.store, cv.clock, cv.registry, cv.workdir, alive, base))
    add_pages(app)
    remote_exec.mount(app)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        # Requests in flight get this long to finish; live pages' streams are then cut
        # (their browsers reconnect to whichever server answers next).
        timeout_graceful_shutdown=GRACE,
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
    )
    scheme = "https" if tls_cert else "http"
    mode = "API and engine" if with_engine else "API only"
    out.print(f"serving {scheme}://{host}:{port} ({mode})", markup=False, highlight=False)
    if engine is not None:
        engine.start()
        notifications.start()
    # uvicorn finishes the requests in flight on SIGTERM, then raises the signal again for
    # the handler it found: exit then, through the `finally` below, not by the default kill.
    signal.signal(signal.SIGTERM, _stop)
    # What start-up loaded (modules, the ORM's mappings, templates) lives as long as the
    # process: keep it out of the collector's full passes, which big batches set off.
    gc.freeze()
    try:
        uvicorn.Server(config).run()
    finally:
        if engine is not None:
            cv.engine.stop()
            engine.join(timeout=30)
            notifications.stop()


def _stop(_signal: int, _frame: object) -> None:
    raise SystemExit(0)


def register(app: typer.Typer) -> None:
    app.command()(serve)
