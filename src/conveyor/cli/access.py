"""`conveyor whoami`, `user`, `grant`, `token`: who may do what."""

from __future__ import annotations

from typing import Annotated

import typer

from conveyor.cli.common import (
    ask_password,
    check_output,
    cv_of,
    dump,
    err,
    out,
    pairs,
    stdin,
    text,
    usage,
)

user_app = typer.Typer(help="Users and their groups.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens (for the server and scripts).", no_args_is_help=True)

Output = Annotated[str, typer.Option("-o", "--output", help="text or json.")]


def whoami(ctx: typer.Context, output: Output = "text") -> None:
    """Who you are here, your groups and your roles.

    \b
    Example:
      conveyor whoami
    """
    check_output(output, ("text", "json"))
    identity, groups, grants = cv_of(ctx).whoami()
    if output == "json":
        roles = [{"role": g.role.value, "scope": str(g.scope), "via": g.subject} for g in grants]
        dump(
            {"user": identity.user, "actingAs": identity.real, "groups": groups, "roles": roles},
            "json",
        )
        return
    out.print(f"{identity.recorded}", markup=False, highlight=False)
    out.print(f"groups: {', '.join(groups) or '-'}", markup=False, highlight=False)
    for g in grants:
        out.print(f"{g.role.value} over {g.scope} (via {g.subject})", markup=False, highlight=False)
    if not grants:
        out.print("no roles: ask an admin (`conveyor grant ROLE --user NAME`)", markup=False)


@user_app.command("add")
def user_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="e.g. alice, or local:alice for a login here.")],
    group: Annotated[list[str], typer.Option("--group", "-g", help="A group to join.")] = [],  # noqa: B006
) -> None:
    """Add a user, or add an existing one to more groups.

    \b
    Examples:
      conveyor user add alice --group release-managers
      conveyor user add local:bob --group security
    """
    cv_of(ctx).add_user(name, group)
    out.print(f"user {name}" + (f" in {', '.join(group)}" if group else ""), markup=False)


@user_app.command("remove")
def user_remove(ctx: typer.Context, name: str) -> None:
    """Remove a user with their grants, memberships and tokens.

    \b
    Example:
      conveyor user remove alice
    """
    cv_of(ctx).remove_user(name)
    out.print(f"user {name} removed", markup=False)


@user_app.command("password")
def password(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The user (yours, or anyone's for an admin).")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read it from stdin, not a prompt.")
    ] = False,
) -> None:
    """Set a user's password, for logging in to the pages (at least 12 characters; kept as
    an argon2id hash, never itself).

    \b
    Example:
      conveyor user password ada
    """
    secret = stdin().readline().rstrip("\n") if password_stdin else ask_password(name)
    cv_of(ctx).set_password(name, secret)
    out.print(f"password of {name} set", markup=False)


@user_app.command("list")
def user_list(ctx: typer.Context, output: Output = "text") -> None:
    """Every user and their groups.

    \b
    Example:
      conveyor user list -o json
    """
    check_output(output, ("text", "json"))
    found = cv_of(ctx).users()
    if output == "json":
        dump([{"name": n, "groups": g} for n, g in found], "json")
        return
    for name, groups in found:
        out.print(f"{name:<24} {', '.join(groups) or '-'}", markup=False, highlight=False)


def grant(
    ctx: typer.Context,
    role: Annotated[str, typer.Argument(help="viewer, promoter, approver, reporter or admin.")],
    user: Annotated[str | None, typer.Option("--user", help="Give it to this user.")] = None,
    group: Annotated[str | None, typer.Option("--group", help="Give it to this group.")] = None,
    env: Annotated[list[str], typer.Option("--env", help="Only over this environment.")] = [],  # noqa: B006
    env_label: Annotated[
        list[str], typer.Option("--env-label", help="Only over environments labelled KEY=VALUE.")
    ] = [],  # noqa: B006
) -> None:
    """Give ROLE to a user or a group: over every environment, or only some.

    \b
    Examples:
      conveyor grant promoter --user ci-bot
      conveyor grant approver --group release-managers --env-label tier=prod
      conveyor grant reporter --user health-agent --env qa --env prod
    """
    from conveyor.model.access import Scope, parse_role

    try:
        parsed = parse_role(role)
    except ValueError as exc:
        raise usage(str(exc), "ROLE") from None
    if (user is None) == (group is None):
        raise usage("give the role to one --user or one --group", "--user")
    subject = f"user:{user}" if user else f"group:{group}"
    scope = Scope(tuple(env), tuple(sorted(pairs(env_label, "--env-label").items())))
    grant_id = cv_of(ctx).grant(subject, parsed, scope)
    out.print(f"grant {grant_id}: {parsed.value} to {subject} over {scope}", markup=False)


def grants(ctx: typer.Context, output: Output = "text") -> None:
    """Every grant: its number, role, user or group, and scope.

    \b
    Example:
      conveyor grants
    """
    check_output(output, ("text", "json"))
    found = cv_of(ctx).grants()
    if output == "json":
        dump(
            [
                {"id": g.id, "subject": g.subject, "role": g.role.value, "scope": str(g.scope)}
                for g in found
            ],
            "json",
        )
        return
    for g in found:
        out.print(
            f"{g.id:>4}  {g.role.value:<9} {g.subject:<28} {g.scope}", markup=False, highlight=False
        )


def revoke(ctx: typer.Context, grant_id: Annotated[int, typer.Argument(metavar="GRANT")]) -> None:
    """Take back a grant (see `conveyor grants` for their numbers).

    \b
    Example:
      conveyor revoke 3
    """
    cv_of(ctx).revoke(grant_id)
    out.print(f"grant {grant_id} revoked", markup=False)


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    user: str,
    expires: Annotated[
        str, typer.Option("--expires", help="Lifetime, e.g. 30d (at most 366d).")
    ] = "90d",
    description: Annotated[str, typer.Option("--description", help="What it is for.")] = "",
) -> None:
    """A new API token for USER, printed once: store it now, it cannot be shown again.

    \b
    Example:
      conveyor token create ci-bot --expires 30d --description "release pipeline"
    """
    from conveyor.model.duration import parse_duration

    try:
        lifetime = parse_duration(expires)
    except ValueError as exc:
        raise usage(str(exc), "--expires") from None
    token_id, token = cv_of(ctx).create_token(user, lifetime, description)
    text(token)
    err.print(f"token {token_id} for {user}, shown once", markup=False, highlight=False)


@token_app.command("list")
def token_list(ctx: typer.Context, output: Output = "text") -> None:
    """Every token: its number, user, expiry (never the token itself).

    \b
    Example:
      conveyor token list
    """
    check_output(output, ("text", "json"))
    rows = cv_of(ctx).tokens()
    data = [
        {
            "id": r.id,
            "user": r.user,
            "description": r.description,
            "createdAt": r.created_at,
            "expiresAt": r.expires_at,
            "revokedAt": r.revoked_at,
        }
        for r in rows
    ]
    if output == "json":
        dump(data, "json")
        return
    for r in rows:
        state = "revoked" if r.revoked_at else f"expires {r.expires_at:%Y-%m-%d}"
        out.print(
            f"{r.id:>4}  {r.user:<24} {state:<18} {r.description}", markup=False, highlight=False
        )


@token_app.command("revoke")
def token_revoke(
    ctx: typer.Context, token_id: Annotated[int, typer.Argument(metavar="TOKEN")]
) -> None:
    """Revoke a token at once.

    \b
    Example:
      conveyor token revoke 2
    """
    cv_of(ctx).revoke_token(token_id)
    out.print(f"token {token_id} revoked", markup=False)


def register(app: typer.Typer) -> None:
    app.command()(whoami)
    app.add_typer(user_app, name="user")
    app.command()(grant)
    app.command()(grants)
    app.command()(revoke)
    app.add_typer(token_app, name="token")
