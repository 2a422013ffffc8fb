"""`conveyor release ...`: create, show, watch, list, label, retry, terminate, recall."""

from __future__ import annotations

import threading
from typing import Annotated

import typer
from rich.live import Live

from conveyor.cli.common import cv_of, dump, err, out, pairs, text_or_json, usage
from conveyor.cli.render import release_view

release_app = typer.Typer(
    help="Create, show, watch, retry, terminate and recall releases.", no_args_is_help=True
)


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
    row = cv_of(ctx).create_release(
        product, version, pairs(artifact, "--artifact"), pairs(label, "--label")
    )
    note = f", triggered on flow {row.flow}" if row.flow else ""
    out.print(f"release {row.product}@{row.version} created{note}")
    if row.message:
        err.print(f"warning: {row.message}", markup=False)


@release_app.command("show")
def release_show(
    ctx: typer.Context,
    ref: str,
    logs: Annotated[bool, typer.Option("--logs", help="Also print every task's output.")] = False,
    output: Annotated[str, typer.Option("-o", "--output", help="text or json")] = "text",
) -> None:
    """The release view: each environment's state, since when, and why."""
    text_or_json(output)
    cv = cv_of(ctx)
    view = cv.show(ref)
    if output == "json":
        from dataclasses import asdict

        dump(asdict(view), "json")
        return
    out.print(release_view(view, cv.clock.now(), logs))


@release_app.command("watch")
def release_watch(
    ctx: typer.Context,
    ref: str,
    timeout: Annotated[float, typer.Option(help="Stop watching after this many seconds.")] = 3600,
) -> None:
    """Redraw the release view live until the release ends."""
    cv = cv_of(ctx)
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
    for r in cv_of(ctx).list_releases(product):
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
        raise usage("give KEY=VALUE labels to set, or --remove KEY", "labels")
    cv_of(ctx).label(ref, pairs(labels or [], "labels"), remove)
    out.print(f"release {ref} labelled")


@release_app.command("retry")
def release_retry(ctx: typer.Context, ref: str) -> None:
    """Resume a failed release from its failed nodes; succeeded ones are not redone."""
    envs = cv_of(ctx).retry(ref)
    out.print(f"release {ref} resumed at {', '.join(envs) or 'its release hooks'}")


@release_app.command("terminate")
def release_terminate(ctx: typer.Context, ref: str) -> None:
    """Stop a release; running tasks are cancelled."""
    cv_of(ctx).terminate(ref)
    out.print(f"release {ref} terminated")


@release_app.command("recall")
def release_recall(
    ctx: typer.Context,
    ref: str,
    reason: Annotated[str, typer.Option("--reason", help="Why: kept in the release and audit.")],
) -> None:
    """Stop a release everywhere and roll back the environments running it to the release
    they ran before (the engine runs the rollbacks)."""
    if cv_of(ctx).recall(ref, reason):
        out.print(f"release {ref} recalled: {reason}", markup=False)
    else:
        out.print(f"release {ref} was already recalled", markup=False)
