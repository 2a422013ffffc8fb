"""`conveyor`: apply definitions, create and trigger releases, watch them move."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from conveyor.cli.common import State, cv_of, dump, err, login, out, usage
from conveyor.cli.errors import exit_code
from conveyor.cli.health import health_app
from conveyor.cli.p2p import p2p_app
from conveyor.cli.releases import release_app
from conveyor.cli.render import resource_table
from conveyor.cli.simulate import simulate
from conveyor.errors import ConveyorError
from conveyor.model.definitions import KINDS, canonical_kind

app = typer.Typer(
    help="Conveyor: promote releases through environments.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
flow_app = typer.Typer(help="Look at promotion flows.", no_args_is_help=True)
policy_app = typer.Typer(help="Look at promotion policies.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit trail.", no_args_is_help=True)
app.add_typer(release_app, name="release")
app.add_typer(flow_app, name="flow")
app.add_typer(policy_app, name="policy")
app.add_typer(audit_app, name="audit")
app.add_typer(p2p_app, name="p2p")
app.add_typer(health_app, name="health")
app.command()(simulate)
T = TypeVar("T")


@app.callback()
def root(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="Database: a SQLite file path or a URL. Default $CONVEYOR_DATABASE_URL, "
            "then ./conveyor.db.",
        ),
    ] = None,
    actor: Annotated[
        str | None,
        typer.Option(
            "--as",
            help="Who you are, for the audit trail. Default $CONVEYOR_USER, then your login name.",
        ),
    ] = None,
) -> None:
    # httpx logs whole request URLs (upload sessions, signed storage links) at INFO.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    who = actor or os.environ.get("CONVEYOR_USER") or login()
    ctx.obj = State(db, who)


# --- definitions -----------------------------------------------------------------------


@app.command()
def apply(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Option("-f", "--file", help="A YAML file or directory.")],
) -> None:
    """Apply definitions: all of them, or none if any is invalid."""
    for d, what in cv_of(ctx).apply(list(files)):
        out.print(f"{d.ref} {what}")


@app.command()
def get(
    ctx: typer.Context,
    kind: Annotated[
        str,
        typer.Argument(
            help="Product, Environment, PromotionFlow, PromotionPolicy (or flow, policy, env ...)"
        ),
    ],
    name: Annotated[str | None, typer.Argument()] = None,
    output: Annotated[str, typer.Option("-o", "--output", help="table, yaml or json")] = "table",
) -> None:
    """List definitions, or show one."""
    items = cv_of(ctx).get(kind, name)
    if output == "table":
        out.print(resource_table([(c.kind, c.name, c.revision, _summary(c.spec)) for c in items]))
        return
    docs = [
        {**c.document, "metadata": {**c.document.get("metadata", {}), "revision": c.revision}}
        for c in items
    ]
    dump(docs[0] if name else docs, output, documents=not name)


def _summary(spec: Any) -> str:
    for field in ("version", "type", "priority"):
        if hasattr(spec, field):
            return f"{field} {getattr(spec, field)}"
    return ""


@app.command()
def delete(ctx: typer.Context, kind: str, name: str) -> None:
    """Delete a definition (its revisions stay in the history)."""
    cv_of(ctx).delete(kind, name)
    out.print(f"{canonical_kind(kind)}/{name} deleted")


@app.command()
def schema(kind: Annotated[str | None, typer.Argument()] = None) -> None:
    """Print the JSON Schema of a kind (or of all kinds), for editors."""
    from conveyor.spec.schema import document_schema

    kinds = [canonical_kind(kind)] if kind else list(KINDS)
    schemas = {k: document_schema(k) for k in kinds}
    dump(schemas[kinds[0]] if kind else schemas, "json")


@flow_app.command("show")
def flow_show(
    ctx: typer.Context,
    name: str,
    fmt: Annotated[str, typer.Option("--format", help="text, mermaid or dot")] = "text",
) -> None:
    """Draw a flow's DAG."""
    from conveyor.model.flowdraw import draw

    (flow,) = cv_of(ctx).get("PromotionFlow", name)
    try:
        drawing = draw(flow.spec, fmt, name=name)
    except ValueError as exc:
        raise usage(str(exc), "--format") from None
    print(drawing)


@policy_app.command("explain")
def policy_explain(ctx: typer.Context, product: str, environment: str) -> None:
    """The policy a product gets in an environment, and where each field came from."""
    merged = cv_of(ctx).explain(product, environment)
    out.print(f"policies applied, in order: {', '.join(merged.applied) or 'none'}")
    body = merged.body.model_dump(mode="json", by_alias=True, exclude_none=True)
    for field, value in body.items():
        out.print(f"\n[bold]{field}[/bold]  (from {merged.sources[field]})")
        dump(value, "yaml")


# --- releases --------------------------------------------------------------------------


@app.command()
def trigger(
    ctx: typer.Context,
    flow: str,
    release: Annotated[str, typer.Option("--release", help="PRODUCT@VERSION")],
) -> None:
    """Start a release down a flow."""
    row = cv_of(ctx).trigger(flow, release)
    out.print(f"release {row.product}@{row.version} triggered on flow {flow}")


@app.command()
def rollback(
    ctx: typer.Context,
    environment: str,
    to: Annotated[str, typer.Option("--to", help="VERSION, or PRODUCT@VERSION")],
    revert: Annotated[
        bool, typer.Option("--revert", help="Revert the promotion commits instead.")
    ] = False,
) -> None:
    """Put an older release back in an environment (the engine runs it next)."""
    p = cv_of(ctx).rollback(environment, to, revert)
    how = "reverting the promotion commits" if revert else "running its workflow"
    out.print(f"rollback of {environment} to {to} queued ({how}); promotion {p.id}")


# --- the engine ------------------------------------------------------------------------


@app.command()
def run(
    ctx: typer.Context,
    until_idle: Annotated[
        bool, typer.Option("--until-idle", help="Stop when nothing can move.")
    ] = False,
) -> None:
    """Run the engine in this process until nothing can move (for scripts and tests)."""
    if not until_idle:
        raise usage("give --until-idle, or use `conveyor engine` to keep running", "--until-idle")
    cv = cv_of(ctx)
    outcome = cv.run_until_idle()
    out.print(
        "idle"
        + (f"; next wake-up at {outcome.next_at:%Y-%m-%d %H:%M:%S}" if outcome.next_at else "")
    )


@app.command()
def engine(
    ctx: typer.Context,
    standby: Annotated[
        bool,
        typer.Option(
            "--standby", help="If an engine serves the database, take over when it stops."
        ),
    ] = False,
) -> None:
    """Run the engine until interrupted: it wakes on events and on the earliest gate deadline.

    One engine serves a database at a time; a second is refused, naming the first."""
    cv = cv_of(ctx)
    # SIGTERM (systemd, Kubernetes) stops as cleanly as Ctrl-C: the pass ends, the socket goes.
    signal.signal(signal.SIGTERM, lambda _sig, _frame: cv.engine.stop())
    mode = " (standby: takes over when the serving engine stops)" if standby else ""
    url = cv.store.engine.url.render_as_string()
    out.print(f"engine {cv.engine.owner} (pid {os.getpid()}) on {url}{mode}")
    try:
        cv.engine.serve(standby=standby)
    except KeyboardInterrupt:
        cv.engine.stop()
    finally:
        cv.close()


@audit_app.command("verify")
def audit_verify(ctx: typer.Context) -> None:
    """Check the hash chain of the audit trail."""
    count, problems = cv_of(ctx).verify_audit()
    for p in problems:
        err.print(p)
    if problems:
        raise typer.Exit(6)
    out.print(f"audit trail intact: {count} events")


@app.command()
def demo(
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Workspace (default: a new temporary directory)."),
    ] = None,
    registry: Annotated[
        bool, typer.Option("--registry", help="Seed 003's path to production instead.")
    ] = False,
) -> None:
    """The quick start end to end: a product promoted through dev, qa and three prods."""
    if registry:
        from conveyor.cli.demo_registry import run_registry_demo

        run_registry_demo(directory, out)
        return
    from conveyor.cli.demo import run_demo

    run_demo(directory, out)


def _guard(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except ConveyorError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise SystemExit(exit_code(exc)) from None


def main() -> None:
    _guard(lambda: app(standalone_mode=True))
