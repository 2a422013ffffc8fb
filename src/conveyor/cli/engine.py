"""`conveyor run --until-idle` and `conveyor engine`: the engine in this process; and
`conveyor demo`, the quick start that runs it."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Annotated

import typer

from conveyor.cli.common import cv_of, err, out, usage
from conveyor.cli.errors import RELEASE_FAILED, RELEASE_RECALLED

# What a release ending this way during `run --until-idle` makes it exit with.
ENDINGS = {"failed": RELEASE_FAILED, "terminated": RELEASE_FAILED, "recalled": RELEASE_RECALLED}


def run(
    ctx: typer.Context,
    until_idle: Annotated[
        bool, typer.Option("--until-idle", help="Stop when nothing can move.")
    ] = False,
) -> None:
    """Run the engine in this process until nothing can move (for scripts and tests).

    Exits 0, or 8 if a release failed (or was terminated) during the run, 9 if one was
    recalled; each such release is named on stderr.

    \b
    Example:
      conveyor trigger main --release shop@1.2.3 && conveyor run --until-idle
    """
    if not until_idle:
        raise usage("give --until-idle, or use `conveyor engine` to keep running", "--until-idle")
    cv = cv_of(ctx)
    before = {(r.product, r.version): r.status for r in cv.list_releases()}
    outcome = cv.run_until_idle()
    out.print(
        "idle"
        + (f"; next wake-up at {outcome.next_at:%Y-%m-%d %H:%M:%S}" if outcome.next_at else "")
    )
    codes = [0]
    for r in cv.list_releases():
        if r.status in ENDINGS and before.get((r.product, r.version)) != r.status:
            err.print(
                f"release {r.product}@{r.version} {r.status}: {r.message}",
                markup=False,
                highlight=False,
            )
            codes.append(ENDINGS[r.status])
    raise typer.Exit(max(codes))


def engine(
    ctx: typer.Context,
    standby: Annotated[
        bool,
        typer.Option(
            "--standby", help="If an engine serves the database, take over when it stops."
        ),
    ] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            metavar="PORT",
            help="Serve Prometheus metrics at http://HOST:PORT/metrics.",
        ),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option("--metrics-host", metavar="HOST", help="Where to listen for /metrics.")
    ] = "127.0.0.1",
) -> None:
    """Run the engine until interrupted: it wakes on events and on the earliest gate deadline.

    One engine serves a database at a time; a second is refused, naming the first.

    \b
    Example:
      conveyor --db /var/lib/conveyor/conveyor.db engine --standby --metrics-port 9464
    """
    cv = cv_of(ctx)
    metrics = None
    if metrics_port is not None:
        from conveyor.engine.metricsport import serve_metrics

        try:
            metrics = serve_metrics(lambda: cv.metrics(True), metrics_host, metrics_port)
        except OSError as exc:
            raise usage(
                f"cannot listen on {metrics_host}:{metrics_port}: {exc.strerror}", "--metrics-port"
            ) from None
        port = metrics.server_address[1]
        out.print(f"metrics at http://{metrics_host}:{port}/metrics", markup=False, highlight=False)
    # SIGTERM (systemd, Kubernetes) stops as cleanly as Ctrl-C: the pass ends, the socket goes.
    signal.signal(signal.SIGTERM, lambda _sig, _frame: cv.engine.stop())
    mode = " (standby: takes over when the serving engine stops)" if standby else ""
    url = cv.store.engine.url.render_as_string()
    out.print(f"engine {cv.engine.owner} (pid {os.getpid()}) on {url}{mode}")
    from conveyor.engine.delivery import Deliverer

    notifications = Deliverer(cv.store, cv.clock)
    notifications.start()
    try:
        cv.engine.serve(standby=standby)
    except KeyboardInterrupt:
        cv.engine.stop()
    finally:
        notifications.stop()
        if metrics is not None:
            metrics.shutdown()
            metrics.server_close()


def demo(
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir", metavar="DIR", help="Workspace (default: a new temporary directory)."
        ),
    ] = None,
    registry: Annotated[
        bool, typer.Option("--registry", help="Seed 003's path to production instead.")
    ] = False,
    serve: Annotated[
        bool,
        typer.Option("--serve", help="Then keep serving its data over HTTP on 127.0.0.1."),
    ] = False,
    port: Annotated[int, typer.Option("--port", help="Where --serve listens.")] = 8080,
) -> None:
    """The quick start end to end: a product promoted through dev, qa and three prods.

    \b
    Example:
      conveyor demo --dir /tmp/tour
      conveyor demo --serve       # then open http://127.0.0.1:8080 with the token printed
    """
    if registry:
        from conveyor.cli.demo_registry import run_registry_demo

        run_registry_demo(directory, out)
        return
    from conveyor.cli.demo import run_demo, serve_demo

    root = run_demo(directory, out)
    if serve:
        serve_demo(root, port, out)


def register(app: typer.Typer) -> None:
    app.command()(run)
    app.command()(engine)
    app.command()(demo)
