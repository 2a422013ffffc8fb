"""`conveyor release ...`, `trigger`, `rollback`: create, show, watch, wait for, list, label,
retry, terminate and recall releases."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Annotated

import typer

from conveyor.cli.common import check_output, cv_of, dump, err, out, pairs, text_or_data, usage
from conveyor.cli.errors import RELEASE_FAILED, RELEASE_RECALLED, WAIT_TIMED_OUT

if TYPE_CHECKING:
    from rich.console import RenderableType

    from conveyor.engine.view import ReleaseView

release_app = typer.Typer(
    help="Create, show, watch, wait for, retry, terminate and recall releases.",
    no_args_is_help=True,
)
Ref = Annotated[str, typer.Argument(metavar="PRODUCT@VERSION")]
UtcOption = Annotated[bool, typer.Option("--utc", help="Times in UTC, not local time.")]
# How often `watch` and `wait` look again: a read of the release, cheap for the store.
POLL_S = 0.5


@release_app.command("create")
def release_create(
    ctx: typer.Context,
    product: Annotated[str, typer.Argument(metavar="PRODUCT")],
    version: Annotated[
        str, typer.Option("--version", metavar="VERSION", help="Semantic version, e.g. 1.2.3")
    ],
    artifact: Annotated[
        list[str],
        typer.Option(
            "--artifact",
            metavar="NAME=REF",
            help="A pinned artifact: NAME=registry/web@sha256:..., a commit SHA. Repeat it.",
        ),
    ] = [],  # noqa: B006
    label: Annotated[
        list[str], typer.Option("--label", metavar="KEY=VALUE", help="Repeat it.")
    ] = [],  # noqa: B006
) -> None:
    """Create an immutable release (flows with autoTrigger start at once).

    \b
    Example:
      conveyor release create shop --version 1.2.3 \\
        --artifact web=registry.example.com/shop/web@sha256:6d76...
    """
    row = cv_of(ctx).create_release(
        product, version, pairs(artifact, "--artifact"), pairs(label, "--label")
    )
    note = f", triggered on flow {row.flow}" if row.flow else ""
    out.print(f"release {row.product}@{row.version} created{note}", markup=False)
    if row.message:
        err.print(f"warning: {row.message}", markup=False)


def trigger(
    ctx: typer.Context,
    flow: Annotated[str, typer.Argument(metavar="FLOW")],
    release: Annotated[str, typer.Option("--release", metavar="PRODUCT@VERSION")],
) -> None:
    """Start a release down a flow.

    \b
    Example:
      conveyor trigger main --release shop@1.2.3
    """
    row = cv_of(ctx).trigger(flow, release)
    out.print(f"release {row.product}@{row.version} triggered on flow {flow}", markup=False)


def rollback(
    ctx: typer.Context,
    environment: Annotated[str, typer.Argument(metavar="ENVIRONMENT")],
    to: Annotated[str, typer.Option("--to", metavar="VERSION", help="VERSION or PRODUCT@VERSION")],
    revert: Annotated[
        bool, typer.Option("--revert", help="Revert the promotion commits instead.")
    ] = False,
) -> None:
    """Put an older release back in an environment (the engine runs it next).

    \b
    Example:
      conveyor rollback prod --to 1.0.0
    """
    p = cv_of(ctx).rollback(environment, to, revert)
    how = "reverting the promotion commits" if revert else "running its workflow"
    out.print(f"rollback of {environment} to {to} queued ({how}); promotion {p.id}")


@release_app.command("show")
def release_show(
    ctx: typer.Context,
    ref: Ref,
    logs: Annotated[
        bool, typer.Option("--logs", help="Also print each task's last attempt and output.")
    ] = False,
    output: Annotated[str, typer.Option("-o", "--output", help="text, json or yaml")] = "text",
    utc: UtcOption = False,
) -> None:
    """The release view: each environment's state, since when, and why.

    \b
    Examples:
      conveyor release show shop@1.2.3
      conveyor release show shop@1.2.3 -o json | jq '.levels[][] | {environment, state}'
    """
    from conveyor.cli.render import release_view

    text_or_data(output)
    cv = cv_of(ctx)
    view = cv.show(ref)
    if output != "text":
        dump(view, output)
        return
    out.print(release_view(view, cv.clock.now(), logs, out.width, utc))


@release_app.command("watch")
def release_watch(
    ctx: typer.Context,
    ref: Ref,
    timeout: Annotated[
        str, typer.Option("--timeout", metavar="DURATION", help="Stop watching after this.")
    ] = "1h",
    utc: UtcOption = False,
) -> None:
    """Redraw the release view live until the release ends. Exits as `release wait` does:
    0 succeeded, 8 failed or terminated, 9 recalled, 10 still running at the timeout.

    \b
    Example:
      conveyor release watch shop@1.2.3 --timeout 30m
    """
    from rich.live import Live

    from conveyor.cli.render import release_view

    cv = cv_of(ctx)
    seconds = _seconds(timeout)
    pause = threading.Event()
    view = cv.show(ref)

    def draw() -> RenderableType:
        return release_view(view, cv.clock.now(), width=out.width, utc=utc)

    with Live(draw(), console=out, auto_refresh=False) as live:
        for _ in range(int(seconds / POLL_S) + 1):
            view = cv.show(ref)
            live.update(draw(), refresh=True)
            if view.status not in ("running", "created"):
                break
            pause.wait(POLL_S)
    raise typer.Exit(_release_code(view))


@release_app.command("wait")
def release_wait(
    ctx: typer.Context,
    ref: Ref,
    until: Annotated[
        str,
        typer.Option(
            "--for",
            metavar="succeeded|ENVIRONMENT",
            help="The release to succeed (default), or its promotion to this environment.",
        ),
    ] = "succeeded",
    timeout: Annotated[
        str, typer.Option("--timeout", metavar="DURATION", help="Give up after this.")
    ] = "1h",
) -> None:
    """Wait until a release succeeds (or reaches an environment), for scripts and CI.

    Exit codes: 0 done; 8 the release (or the environment's promotion) failed, was
    terminated or cannot get there any more; 9 the release was recalled; 10 timed out.

    \b
    Examples:
      conveyor release wait shop@1.2.3 --timeout 30m
      conveyor release wait shop@1.2.3 --for qa && ./integration-tests.sh
    """
    cv = cv_of(ctx)
    seconds = _seconds(timeout)
    pause = threading.Event()
    for _ in range(int(seconds / POLL_S) + 1):
        view = cv.show(ref)
        code, message = _waited(view, until)
        if code is not None:
            (out if code == 0 else err).print(message, markup=False, highlight=False)
            raise typer.Exit(code)
        pause.wait(POLL_S)
    goal = "succeeded" if until == "succeeded" else f"succeeded in {until}"
    err.print(
        f"release {ref} is still {view.status}, not {goal}, after {timeout}",
        markup=False,
        highlight=False,
    )
    raise typer.Exit(WAIT_TIMED_OUT)


def _waited(view: ReleaseView, until: str) -> tuple[int | None, str]:
    """The exit code and what to say once the wait is over; (None, "") while it is not."""
    ref = f"{view.product}@{view.version}"
    if view.status == "recalled":
        return RELEASE_RECALLED, f"release {ref} was recalled: {view.message}"
    if until == "succeeded":
        if view.status == "succeeded":
            return 0, f"release {ref} succeeded"
        if view.status in ("failed", "terminated", "superseded"):
            return RELEASE_FAILED, f"release {ref} {view.status}: {view.message}"
        return None, ""
    nodes = [n for n in view.nodes if n.environment == until and not n.rollback]
    if not nodes and view.flow is not None:
        raise usage(
            f"release {ref}'s flow {view.flow} has no environment '{until}': "
            f"use succeeded or one of {', '.join(n.environment for n in view.nodes)}",
            "--for",
        )
    states = {n.state for n in nodes}
    if states == {"succeeded"}:
        return 0, f"release {ref} succeeded in {until}"
    if states & {"failed", "rejected", "skipped", "superseded", "terminated", "cancelled"}:
        return RELEASE_FAILED, f"release {ref} cannot reach {until}: {', '.join(sorted(states))}"
    if view.status in ("failed", "terminated", "superseded", "succeeded"):
        return RELEASE_FAILED, f"release {ref} {view.status} before reaching {until}"
    return None, ""


def _release_code(view: ReleaseView) -> int:
    return {"succeeded": 0, "recalled": RELEASE_RECALLED}.get(
        view.status, RELEASE_FAILED if view.status not in ("running", "created") else WAIT_TIMED_OUT
    )


def _seconds(text: str) -> float:
    from conveyor.model.duration import parse_duration

    try:
        return parse_duration(text).total_seconds()
    except ValueError as exc:
        raise usage(f"--timeout {text}: {exc}", "--timeout") from None


@release_app.command("list")
def release_list(
    ctx: typer.Context,
    product: Annotated[str | None, typer.Argument(metavar="PRODUCT")] = None,
    output: Annotated[
        str, typer.Option("-o", "--output", help="table, wide, json or yaml")
    ] = "table",
) -> None:
    """Releases, oldest first.

    \b
    Example:
      conveyor release list shop -o json
    """
    from rich.table import Table

    from conveyor.jsonstyle import timestamp

    check_output(output, ("table", "wide", "json", "yaml"))
    rows = cv_of(ctx).list_releases(product)
    if output in ("json", "yaml"):
        from conveyor.jsonstyle import release_doc

        dump([release_doc(r) for r in rows], output)
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    columns = ["release", "status", "flow", "created"]
    columns += ["created by", "finished", "labels"] if output == "wide" else []
    for col in columns:
        table.add_column(col)
    for r in rows:
        cells = [f"{r.product}@{r.version}", r.status, r.flow or "", timestamp(r.created_at)]
        if output == "wide":
            labels = ",".join(f"{k}={v}" for k, v in sorted(r.labels.items()))
            finished = timestamp(r.finished_at) if r.finished_at else ""
            cells += [r.created_by, finished, labels]
        table.add_row(*cells)
    out.print(table)


@release_app.command("label")
def release_label(
    ctx: typer.Context,
    ref: Ref,
    labels: Annotated[list[str] | None, typer.Argument(metavar="KEY=VALUE")] = None,
    remove: Annotated[
        list[str], typer.Option("--remove", metavar="KEY", help="A label to remove.")
    ] = [],  # noqa: B006
) -> None:
    """Set or remove release labels (the only thing about a release that can change).

    \b
    Example:
      conveyor release label shop@1.2.3 qa-signoff=passed
    """
    if not labels and not remove:
        raise usage("give KEY=VALUE labels to set, or --remove KEY", "labels")
    cv_of(ctx).label(ref, pairs(labels or [], "labels"), remove)
    out.print(f"release {ref} labelled", markup=False)


@release_app.command("retry")
def release_retry(ctx: typer.Context, ref: Ref) -> None:
    """Resume a failed release from its failed nodes; succeeded ones are not redone.

    \b
    Example:
      conveyor release retry shop@1.2.3
    """
    envs = cv_of(ctx).retry(ref)
    out.print(f"release {ref} resumed at {', '.join(envs) or 'its release hooks'}", markup=False)


@release_app.command("terminate")
def release_terminate(ctx: typer.Context, ref: Ref) -> None:
    """Stop a release; running tasks are cancelled.

    \b
    Example:
      conveyor release terminate shop@1.2.3
    """
    cv_of(ctx).terminate(ref)
    out.print(f"release {ref} terminated", markup=False)


@release_app.command("recall")
def release_recall(
    ctx: typer.Context,
    ref: Ref,
    reason: Annotated[
        str, typer.Option("--reason", metavar="REASON", help="Why: kept in the release and audit.")
    ],
) -> None:
    """Stop a release everywhere and roll back the environments running it to the release
    they ran before (the engine runs the rollbacks).

    \b
    Example:
      conveyor release recall shop@1.2.3 --reason "500s in prod-eu"
    """
    if cv_of(ctx).recall(ref, reason):
        out.print(f"release {ref} recalled: {reason}", markup=False)
    else:
        out.print(f"release {ref} was already recalled", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(release_app, name="release")
    app.command()(trigger)
    app.command()(rollback)
