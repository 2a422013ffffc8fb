"""`conveyor approve`, `reject`, `approvals`, `override`: people's decisions on promotions."""

from __future__ import annotations

from typing import Annotated

import typer

from conveyor.cli.common import check_output, cv_of, dump, out

Promotion = Annotated[str, typer.Argument(metavar="PROMOTION", help="RELEASE/ENVIRONMENT.")]
Comment = Annotated[str, typer.Option("--comment", "-m", help="Why; kept in the audit trail.")]


def approve(ctx: typer.Context, promotion: Promotion, comment: Comment = "") -> None:
    """Approve a promotion waiting at an approval gate.

    \b
    Example:
      conveyor approve shop@1.2.0/prod --comment "change ticket CHG-42"
    """
    cv_of(ctx).approve(promotion, comment)
    out.print(f"approved {promotion}", markup=False, highlight=False)


def reject(ctx: typer.Context, promotion: Promotion, comment: Comment = "") -> None:
    """Reject a promotion: it ends rejected, and the promotions after it are skipped.

    \b
    Example:
      conveyor reject shop@1.2.0/prod --comment "breaks the EU tax rules"
    """
    cv_of(ctx).reject(promotion, comment)
    out.print(f"rejected {promotion}", markup=False, highlight=False)


def approvals(
    ctx: typer.Context,
    output: Annotated[str, typer.Option("-o", "--output", help="text or json.")] = "text",
) -> None:
    """The promotions waiting for your approval.

    \b
    Example:
      conveyor approvals
    """
    check_output(output, ("text", "json"))
    found = cv_of(ctx).approvals()
    if output == "json":
        dump([{"promotion": p, "waiting": w, "since": t} for p, w, t in found], "json")
        return
    if not found:
        out.print("nothing waits for your approval", markup=False)
    for promotion, waiting, _ in found:
        out.print(f"{promotion:<32} {waiting}", markup=False, highlight=False)


def override(
    ctx: typer.Context,
    promotion: Promotion,
    reason: Annotated[str, typer.Option("--reason", help="Why; kept in the audit trail.")],
) -> None:
    """Let one promotion start while its windows are closed (admins; windows with
    manualOverride: true only).

    \b
    Example:
      conveyor override shop@1.2.1/prod --reason "hotfix for INC-7"
    """
    cv_of(ctx).override_window(promotion, reason)
    out.print(f"windows overridden for {promotion}", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    for command in (approve, reject, approvals, override):
        app.command()(command)
