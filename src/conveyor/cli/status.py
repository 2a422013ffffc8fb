"""`conveyor status` (what runs where, what is on its way) and `conveyor audit log|verify`."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from conveyor.cli.common import check_output, cv_of, dump, err, out, text, usage
from conveyor.cli.errors import AUDIT_BROKEN
from conveyor.cli.health import parse_at

if TYPE_CHECKING:
    from conveyor.engine.overview import EnvironmentStatus
    from conveyor.store.tables import AuditRow

audit_app = typer.Typer(help="The audit trail: read it, verify it.", no_args_is_help=True)
UtcOption = Annotated[bool, typer.Option("--utc", help="Show times in UTC, not local time.")]


def when(value: datetime | None, utc: bool) -> str:
    """`2026-12-03 06:18:00 CET`: local time unless --utc, always with its zone."""
    if value is None:
        return ""
    shown = value if utc else value.astimezone()
    return shown.strftime("%Y-%m-%d %H:%M:%S ") + (shown.tzname() or "")


def status(
    ctx: typer.Context,
    product: Annotated[str | None, typer.Argument(metavar="PRODUCT")] = None,
    output: Annotated[str, typer.Option("-o", "--output", help="table, json or yaml")] = "table",
    utc: UtcOption = False,
) -> None:
    """What runs where: each product's version in each environment, since when, how the
    newest promotion there went, and what is on its way.

    \b
    Examples:
      conveyor status
      conveyor status shop -o json
    """
    check_output(output, ("table", "json", "yaml"))
    rows = cv_of(ctx).status(product)
    if output != "table":
        dump(rows, output)
        return
    if not rows:
        out.print("no promotions yet: `conveyor release create` then `conveyor trigger`")
        return
    _status_table(rows, utc)


def _status_table(rows: list[EnvironmentStatus], utc: bool) -> None:
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("product", "environment", "running", "since", "last promotion", "on its way"):
        table.add_column(col, no_wrap=col != "on its way")
    for r in rows:
        running = (r.version or "-") + (" (rollback)" if r.rollback else "")
        last = f"{r.last_version} {r.last_state}" if r.last_version else ""
        coming = "; ".join(
            f"{i.version} {i.state}" + (f": {i.detail}" if i.detail else "") for i in r.incoming
        )
        table.add_row(r.product, r.environment, running, when(r.since, utc), last, coming)
    out.print(table)


def windows(
    ctx: typer.Context,
    environment: Annotated[str, typer.Argument(metavar="ENVIRONMENT")],
    product: Annotated[
        str | None,
        typer.Option(
            "--product",
            metavar="PRODUCT",
            help="Its windows and its policy's too (default: the only product, if there is one).",
        ),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option("--at", metavar="TIME", help="e.g. 2026-12-04T22:30:00Z. Default now."),
    ] = None,
    output: Annotated[str, typer.Option("-o", "--output", help="table, json or yaml")] = "table",
) -> None:
    """May a promotion to ENVIRONMENT start now (or --at TIME)? Which window decides, and
    when it next opens.

    \b
    Example:
      conveyor windows prod --product shop --at 2026-12-05T23:00:00+01:00
    """
    check_output(output, ("table", "json", "yaml"))
    cv = cv_of(ctx)
    when_ = parse_at(at) or cv.clock.now()
    found, decision = cv.windows(environment, product, when_)
    if output != "table":
        from conveyor.jsonstyle import windows_doc

        dump(windows_doc(environment, when_, found, decision), output)
        return
    state = "open" if decision.open else "closed"
    opens = f"; opens {when(decision.next_opening, True)}" if decision.next_opening else ""
    out.print(
        f"{environment} at {when(when_, True)}: {state}: {decision.reason}{opens}",
        markup=False,
        highlight=False,
    )
    for source, w in found:
        out.print(f"  {w.describe()}  ({source})", markup=False, highlight=False)


def metrics(ctx: typer.Context) -> None:
    """Print the store's figures in the Prometheus text format (releases by status,
    promotions by state, task runs, the longest wait, audit events, health reports).

    \b
    Example (node_exporter's textfile collector):
      conveyor metrics > /var/lib/node_exporter/conveyor.prom
    """
    text(cv_of(ctx).metrics(), end="")


@audit_app.command("log")
def audit_log(
    ctx: typer.Context,
    release: Annotated[
        str | None, typer.Option("--release", metavar="PRODUCT@VERSION", help="Its events.")
    ] = None,
    env: Annotated[
        str | None, typer.Option("--env", metavar="ENVIRONMENT", help="Events about it.")
    ] = None,
    actor: Annotated[str | None, typer.Option("--actor", metavar="NAME", help="By whom.")] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="DURATION|TIME", help="e.g. 2h, or 2026-12-03T09:00:00Z."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many, the newest.")] = 100,
    output: Annotated[str, typer.Option("-o", "--output", help="table, json or yaml")] = "table",
    utc: UtcOption = False,
) -> None:
    """Read the audit trail, oldest first: who did what, to what, when.

    \b
    Examples:
      conveyor audit log --release shop@1.2.3
      conveyor audit log --env prod --since 24h -o json
    """
    check_output(output, ("table", "json", "yaml"))
    cv = cv_of(ctx)
    start = _since(since, cv.clock.now()) if since else None
    rows = cv.audit_log(release, env, actor, start, limit)
    if output != "table":
        dump([_event_json(r) for r in rows], output)
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("time", "actor", "action", "subject", "change"):
        table.add_column(col, no_wrap=col != "change")
    for r in rows:
        table.add_row(when(r.at, utc), r.actor, r.action, r.subject, change(r.before, r.after))
    out.print(table)


def change(before: dict[str, Any] | None, after: dict[str, Any] | None) -> str:
    """A short reading of what changed: `running -> succeeded`, `revision 3`, `reason: ...`."""
    before, after = before or {}, after or {}
    parts = []
    for key in ("state", "status"):
        if key in after:
            parts.append(f"{before[key]} -> {after[key]}" if key in before else str(after[key]))
    if "revision" in after:
        parts.append(f"revision {after['revision']}")
    for key in ("reason", "message", "summary", "why", "labels", "deployed"):
        if after.get(key):
            parts.append(f"{key}: {after[key]}")
    if not parts and after:
        parts.append(", ".join(f"{k}={v}" for k, v in after.items() if not isinstance(v, dict)))
    return "; ".join(p for p in parts if p)


def _event_json(r: AuditRow) -> dict[str, Any]:
    keys = ("id", "at", "actor", "action", "subject", "before", "after", "hash")
    return {k: getattr(r, k) for k in keys}


def _since(text: str, now: datetime) -> datetime:
    from conveyor.model.duration import parse_duration

    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise usage(
            f"'{text}' is neither a duration (2h, 30m) nor a time (2026-12-03T09:00:00Z)",
            "--since",
        ) from None
    if value.tzinfo is None:
        raise usage(f"'{text}' has no timezone: add one, e.g. {text}Z", "--since")
    return value


@audit_app.command("verify")
def audit_verify(ctx: typer.Context) -> None:
    """Check the hash chain of the audit trail: exits 6 if an event was changed or removed.

    \b
    Example:
      conveyor audit verify
    """
    count, problems = cv_of(ctx).verify_audit()
    for p in problems:
        err.print(p, markup=False)
    if problems:
        raise typer.Exit(AUDIT_BROKEN)
    out.print(f"audit trail intact: {count} events")


def register(app: typer.Typer) -> None:
    app.command()(status)
    app.command()(windows)
    app.command()(metrics)
    app.add_typer(audit_app, name="audit")
