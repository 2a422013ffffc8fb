"""`conveyor`: apply definitions, create and trigger releases, watch them move.

Only Typer, rich and the command modules load at start-up; each command imports the engine
parts it uses when it runs (bench/cli.py holds `--help` and `get` under a quarter second).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from typer.core import TyperGroup

from conveyor.cli import (
    access,
    approvals,
    definitions,
    engine,
    login,
    notifications,
    releases,
    remote,
    serve,
    status,
)
from conveyor.cli.common import State, err, out
from conveyor.cli.db import db_app
from conveyor.cli.errors import exit_code
from conveyor.cli.health import health_app
from conveyor.cli.help import words_not_types
from conveyor.cli.p2p import p2p_app
from conveyor.cli.simulate import simulate
from conveyor.errors import ConveyorError

T = TypeVar("T")
# Options of the whole tool, accepted after the command too (`conveyor get flows --db x`),
# as kubectl takes its global flags anywhere. Each takes one value.
GLOBAL_OPTIONS = ("--db", "--as", "--server")


def hoist_global_options(args: list[str]) -> list[str]:
    """Move global options (and their values) in front of the command; `--` ends options."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        name = arg.split("=", 1)[0]
        if name in GLOBAL_OPTIONS and i > 0:
            step = 1 if "=" in arg else 2
            front.extend(args[i : i + step])
            i += step
            continue
        rest.append(arg)
        i += 1
    return front + rest


class ConveyorGroup(TyperGroup):
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_global_options(list(args)))


words_not_types()
app = typer.Typer(
    cls=ConveyorGroup,
    help="Conveyor: promote releases through environments.\n\n"
    "Global options (--db, --as, --server) may come before or after the command.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from conveyor import __version__

        print(f"conveyor {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            metavar="PATH|URL",
            help="Database: a SQLite file path or a URL. Default $CONVEYOR_DATABASE_URL, "
            "then ./conveyor.db.",
        ),
    ] = None,
    actor: Annotated[
        str | None,
        typer.Option(
            "--as",
            metavar="NAME",
            help="Act as another user, with their roles (admins only; the audit trail records "
            "'local:YOU as NAME'). Without it you are local:LOGIN.",
        ),
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            metavar="URL",
            envvar="CONVEYOR_SERVER",
            help="Run the command on this Conveyor server, as the user of $CONVEYOR_TOKEN "
            "or of `conveyor login URL`.",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", is_eager=True, callback=_version
        ),
    ] = False,
) -> None:
    import logging

    # httpx logs whole request URLs (upload sessions, signed storage links) at INFO.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if not isinstance(ctx.obj, State):  # a server running the command made its own
        ctx.obj = State(db, actor)
    ctx.call_on_close(ctx.obj.close)


definitions.register(app)
releases.register(app)
status.register(app)
access.register(app)
approvals.register(app)
notifications.register(app)
login.register(app)
engine.register(app)
serve.register(app)
app.add_typer(p2p_app, name="p2p")
app.add_typer(health_app, name="health")
app.add_typer(db_app, name="db")
app.command()(simulate)


def _guard(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except ConveyorError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise SystemExit(exit_code(exc)) from None


def main() -> None:
    argv = sys.argv[1:]
    server = remote.server_in(argv)
    if server is not None:
        code = _guard(lambda: remote.run(server, argv, typer.main.get_command(app)))
        if code is not None:
            raise SystemExit(code)
    _guard(lambda: app(standalone_mode=True))


__all__ = ["app", "main", "out"]
