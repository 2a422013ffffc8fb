"""`conveyor`: apply definitions, create and trigger releases, watch them move."""

from __future__ import annotations

import getpass
import json
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.live import Live

from conveyor.cli.errors import exit_code
from conveyor.cli.render import release_view, resource_table
from conveyor.engine.service import Conveyor
from conveyor.errors import ConveyorError, DefinitionError, Problem
from conveyor.model.definitions import KINDS, canonical_kind

app = typer.Typer(
    help="Conveyor: promote releases through environments.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
release_app = typer.Typer(
    help="Create, show, watch, retry and terminate releases.", no_args_is_help=True
)
flow_app = typer.Typer(help="Look at promotion flows.", no_args_is_help=True)
policy_app = typer.Typer(help="Look at promotion policies.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit trail.", no_args_is_help=True)
app.add_typer(release_app, name="release")
app.add_typer(flow_app, name="flow")
app.add_typer(policy_app, name="policy")
app.add_typer(audit_app, name="audit")

# Piped output (CI logs, `make demo | tee`) keeps a readable width instead of 80 columns.
out = Console(width=None if sys.stdout.isatty() else 160, soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")


class State:
    def __init__(self, db: str | None, actor: str) -> None:
        self.db, self.actor = db, actor
        self._cv: Conveyor | None = None

    def cv(self) -> Conveyor:
        if self._cv is None:
            self._cv = Conveyor.open(self.db, actor=self.actor)
        return self._cv


def _state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    assert isinstance(obj, State)
    return obj


def _cv(ctx: typer.Context) -> Conveyor:
    return _state(ctx).cv()


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
    who = actor or os.environ.get("CONVEYOR_USER") or _login()
    ctx.obj = State(db, who)


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _pairs(values: list[str], option: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for v in values:
        key, sep, value = v.partition("=")
        if not sep or not key:
            raise DefinitionError(Problem(f"'{v}' is not KEY=VALUE", "command line", None, option))
        result[key] = value
    return result


def _dump(data: Any, fmt: str, documents: bool = False) -> None:
    """JSON, or YAML; with `documents`, a list becomes a stream of `---` documents."""
    if fmt == "json":
        out.print_json(json.dumps(data, default=str))
        return
    if fmt != "yaml":
        raise DefinitionError(
            Problem(
                f"unknown output '{fmt}': use table, yaml or json", "command line", None, "--output"
            )
        )
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    sys.stdout.flush()
    yaml.dump_all(data if documents else [data], sys.stdout)


# --- definitions -----------------------------------------------------------------------


@app.command()
def apply(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Option("-f", "--file", help="A YAML file or directory.")],
) -> None:
    """Apply definitions: all of them, or none if any is invalid."""
    for d, what in _cv(ctx).apply(list(files)):
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
    items = _cv(ctx).get(kind, name)
    if output == "table":
        out.print(resource_table([(c.kind, c.name, c.revision, _summary(c.spec)) for c in items]))
        return
    docs = [
        {**c.document, "metadata": {**c.document.get("metadata", {}), "revision": c.revision}}
        for c in items
    ]
    _dump(docs[0] if name else docs, output, documents=not name)


def _summary(spec: Any) -> str:
    for field in ("version", "type", "priority"):
        if hasattr(spec, field):
            return f"{field} {getattr(spec, field)}"
    return ""


@app.command()
def delete(ctx: typer.Context, kind: str, name: str) -> None:
    """Delete a definition (its revisions stay in the history)."""
    _cv(ctx).delete(kind, name)
    out.print(f"{canonical_kind(kind)}/{name} deleted")


@app.command()
def schema(kind: Annotated[str | None, typer.Argument()] = None) -> None:
    """Print the JSON Schema of a kind (or of all kinds), for editors."""
    from conveyor.spec.schema import document_schema

    kinds = [canonical_kind(kind)] if kind else list(KINDS)
    schemas = {k: document_schema(k) for k in kinds}
    out.print_json(json.dumps(schemas[kinds[0]] if kind else schemas))


@flow_app.command("show")
def flow_show(
    ctx: typer.Context,
    name: str,
    fmt: Annotated[str, typer.Option("--format", help="text, mermaid or dot")] = "text",
) -> None:
    """Draw a flow's DAG."""
    from conveyor.model.flowdraw import draw

    (flow,) = _cv(ctx).get("PromotionFlow", name)
    try:
        drawing = draw(flow.spec, fmt, name=name)
    except ValueError as exc:
        raise DefinitionError(Problem(str(exc), "command line", None, "--format")) from None
    print(drawing)


@policy_app.command("explain")
def policy_explain(ctx: typer.Context, product: str, environment: str) -> None:
    """The policy a product gets in an environment, and where each field came from."""
    merged = _cv(ctx).explain(product, environment)
    out.print(f"policies applied, in order: {', '.join(merged.applied) or 'none'}")
    body = merged.body.model_dump(mode="json", by_alias=True, exclude_none=True)
    for field, value in body.items():
        out.print(f"\n[bold]{field}[/bold]  (from {merged.sources[field]})")
        _dump(value, "yaml")


# --- releases --------------------------------------------------------------------------


@release_app.command("create")
def release_create(
    ctx: typer.Context,
    product: str,
    version: Annotated[str, typer.Option("--version", help="Semantic version, e.g. 1.2.3")],
    artifact: Annotated[
        list[str],
        typer.Option("--artifact", help="NAME=REF, pinned: registry/web@sha256:..., a commit SHA"),
    ] = [],  # noqa: B006
    label: Annotated[list[str], typer.Option("--label", help="KEY=VALUE")] = [],  # noqa: B006
) -> None:
    """Create an immutable release (flows with autoTrigger start at once)."""
    row = _cv(ctx).create_release(
        product, version, _pairs(artifact, "--artifact"), _pairs(label, "--label")
    )
    note = f", triggered on flow {row.flow}" if row.flow else ""
    out.print(f"release {row.product}@{row.version} created{note}")
    if row.message:
        err.print(f"warning: {row.message}", markup=False)


@app.command()
def trigger(
    ctx: typer.Context,
    flow: str,
    release: Annotated[str, typer.Option("--release", help="PRODUCT@VERSION")],
) -> None:
    """Start a release down a flow."""
    row = _cv(ctx).trigger(flow, release)
    out.print(f"release {row.product}@{row.version} triggered on flow {flow}")


@release_app.command("show")
def release_show(
    ctx: typer.Context,
    ref: str,
    logs: Annotated[bool, typer.Option("--logs", help="Also print every task's output.")] = False,
    output: Annotated[str, typer.Option("-o", "--output", help="text or json")] = "text",
) -> None:
    """The release view: each environment's state, since when, and why."""
    if output not in ("text", "json"):
        raise DefinitionError(
            Problem(f"unknown output '{output}': use text or json", "command line", None, "-o")
        )
    cv = _cv(ctx)
    view = cv.show(ref)
    if output == "json":
        from dataclasses import asdict

        out.print_json(json.dumps(asdict(view), default=str))
        return
    out.print(release_view(view, cv.clock.now(), logs))


@release_app.command("watch")
def release_watch(
    ctx: typer.Context,
    ref: str,
    timeout: Annotated[float, typer.Option(help="Stop watching after this many seconds.")] = 3600,
) -> None:
    """Redraw the release view live until the release ends."""
    cv = _cv(ctx)
    pause = threading.Event()
    with Live(release_view(cv.show(ref), cv.clock.now()), console=out, auto_refresh=False) as live:
        for _ in range(int(timeout / 0.5) + 1):
            view = cv.show(ref)
            live.update(release_view(view, cv.clock.now()), refresh=True)
            if view.status not in ("running", "created"):
                break
            pause.wait(0.5)


@release_app.command("list")
def release_list(
    ctx: typer.Context, product: Annotated[str | None, typer.Argument()] = None
) -> None:
    """Releases, oldest first."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("release", "status", "flow", "created"):
        table.add_column(col)
    for r in _cv(ctx).list_releases(product):
        table.add_row(f"{r.product}@{r.version}", r.status, r.flow or "", str(r.created_at)[:19])
    out.print(table)


@release_app.command("label")
def release_label(
    ctx: typer.Context,
    ref: str,
    labels: Annotated[list[str] | None, typer.Argument(help="KEY=VALUE ...")] = None,
    remove: Annotated[list[str], typer.Option("--remove", help="A label to remove.")] = [],  # noqa: B006
) -> None:
    """Set or remove release labels (the only thing about a release that can change)."""
    if not labels and not remove:
        raise DefinitionError(
            Problem("give KEY=VALUE labels to set, or --remove KEY", "command line", None, "labels")
        )
    _cv(ctx).label(ref, _pairs(labels or [], "labels"), remove)
    out.print(f"release {ref} labelled")


@release_app.command("retry")
def release_retry(ctx: typer.Context, ref: str) -> None:
    """Resume a failed release from its failed nodes; succeeded ones are not redone."""
    envs = _cv(ctx).retry(ref)
    out.print(f"release {ref} resumed at {', '.join(envs) or 'its release hooks'}")


@release_app.command("terminate")
def release_terminate(ctx: typer.Context, ref: str) -> None:
    """Stop a release; running tasks are cancelled."""
    _cv(ctx).terminate(ref)
    out.print(f"release {ref} terminated")


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
        raise DefinitionError(
            Problem(
                "give --until-idle, or use `conveyor engine` to keep running",
                "command line",
                None,
                "--until-idle",
            )
        )
    cv = _cv(ctx)
    outcome = cv.run_until_idle()
    out.print(
        "idle"
        + (f"; next wake-up at {outcome.next_at:%Y-%m-%d %H:%M:%S}" if outcome.next_at else "")
    )


@app.command()
def engine(ctx: typer.Context) -> None:
    """Run the engine until interrupted: it wakes on events and on the earliest gate deadline."""
    cv = _cv(ctx)
    # SIGTERM (systemd, Kubernetes) stops as cleanly as Ctrl-C: the pass ends, the socket goes.
    signal.signal(signal.SIGTERM, lambda _sig, _frame: cv.engine.stop())
    out.print(f"engine {cv.engine.owner} running on {cv.store.engine.url.render_as_string()}")
    try:
        cv.engine.serve()
    except KeyboardInterrupt:
        cv.engine.stop()
    finally:
        cv.close()


@audit_app.command("verify")
def audit_verify(ctx: typer.Context) -> None:
    """Check the hash chain of the audit trail."""
    count, problems = _cv(ctx).verify_audit()
    for p in problems:
        err.print(p)
    if problems:
        raise typer.Exit(6)
    out.print(f"audit trail intact: {count} events")


@app.command()
def demo(
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Workspace (default: a new temporary directory).")
    ] = None,
) -> None:
    """The quick start end to end: a product promoted through dev, qa and three prods."""
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
