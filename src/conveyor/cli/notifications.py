"""`conveyor notifications`: what was sent to the notification sinks, and what was not."""

from __future__ import annotations

from typing import Annotated

import typer

from conveyor.cli.common import check_output, cv_of, dump, out
from conveyor.cli.status import when


def notifications(
    ctx: typer.Context,
    undelivered: Annotated[
        bool, typer.Option("--undelivered", help="Only those not delivered (yet).")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="The newest N.")] = 50,
    utc: Annotated[bool, typer.Option("--utc", help="Times in UTC.")] = False,
    output: Annotated[str, typer.Option("-o", "--output", help="table or json.")] = "table",
) -> None:
    """The newest notifications, oldest first: to which sink, which event, delivered or why
    not (a sink that fails is retried for about 4 hours, then given up).

    \b
    Example:
      conveyor notifications --undelivered
    """
    check_output(output, ("table", "json"))
    rows = cv_of(ctx).notifications(undelivered, limit)
    if output == "json":
        dump(
            [
                {
                    "id": r.id,
                    "sink": r.sink,
                    "event": r.event,
                    "subject": r.payload.get("subject", ""),
                    "deliveryId": r.payload.get("deliveryId", ""),
                    "createdAt": r.created_at,
                    "deliveredAt": r.delivered_at,
                    "attempts": r.attempts,
                    "nextAttemptAt": None if r.delivered_at else r.next_attempt_at,
                    "lastError": r.last_error,
                }
                for r in rows
            ],
            "json",
        )
        return
    if not rows:
        out.print("no notifications" + (" waiting" if undelivered else ""), markup=False)
        return
    from rich.table import Table

    from conveyor.engine.delivery import MAX_ATTEMPTS

    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("time", "sink", "event", "subject", "state"):
        table.add_column(col, no_wrap=col != "state")
    for r in rows:
        if r.delivered_at is not None:
            state = f"delivered (attempt {r.attempts})"
        elif r.attempts >= MAX_ATTEMPTS:
            state = f"given up after {r.attempts} attempts: {r.last_error}"
        elif r.attempts:
            state = (
                f"retrying at {when(r.next_attempt_at, utc)} ({r.attempts} failed: {r.last_error})"
            )
        else:
            state = "to send"
        table.add_row(when(r.created_at, utc), r.sink, r.event, r.payload.get("subject", ""), state)
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command()(notifications)
