"""`conveyor --server URL ...`: the same commands, run by a Conveyor server for its caller.

The command line is checked here first (usage errors and --help never leave the machine),
then sent with the files it names (`apply -f`, `simulate --history`) to POST /api/v1/cli,
which runs the very same command against the server's store under the caller's identity
and streams back what it prints and its exit code (cli/remote_exec.py). So a command's
output and exit codes are the same against a server as against a local store, as with
Jenkins' CLI. The token comes from CONVEYOR_TOKEN, else from `conveyor login`.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

# Typer vendors click: its commands and exceptions are these, not the click package's.
from typer._click import Command
from typer._click.exceptions import ClickException
from typer.core import TyperGroup

if TYPE_CHECKING:
    import httpx

from conveyor.cli.common import _FIT, PIPED_WIDTH, out
from conveyor.errors import (
    Conflict,
    ConveyorError,
    DefinitionError,
    Forbidden,
    NotFound,
    Problem,
    Unauthenticated,
)

ENDPOINT = "/api/v1/cli"
# Commands about this machine, not a store: they run here even with --server.
LOCAL = frozenset({"demo", "serve", "engine", "p2p", "schema", "login", "logout", "init", "db"})
# Options whose value is a file the command reads: it travels with the command.
FILE_OPTIONS = frozenset({"-f", "--file", "--history"})
# The server says something at least this often while a command runs (remote_exec.PING).
READ_TIMEOUT = 60.0


def server_in(argv: list[str]) -> str | None:
    """The server named by --server (before any `--`), else by CONVEYOR_SERVER."""
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--server" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--server="):
            return arg.split("=", 1)[1]
    return os.environ.get("CONVEYOR_SERVER") or None


def command_path(group: Command, argv: list[str]) -> list[str]:
    """The command's names (`["release", "show"]`), parsing the whole line as the command
    would: a usage error or --help ends here, printed as the local command prints it."""
    ctx = group.make_context("conveyor", list(argv))
    path: list[str] = []
    command = group
    for _ in range(8):  # groups nest two deep (`conveyor p2p serve`)
        if not isinstance(command, TyperGroup):
            break
        rest = [*ctx._protected_args, *ctx.args]
        if not rest:
            break
        name, sub, args = command.resolve_command(ctx, rest)
        if name is None or sub is None:
            break
        path.append(name)
        ctx = sub.make_context(name, args, parent=ctx)
        command = sub
    return path


def without_server(argv: list[str]) -> list[str]:
    result: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--server":
            skip = True
        elif not arg.startswith("--server="):
            result.append(arg)
    return result


def pack_files(argv: list[str]) -> dict[str, str]:
    """The files (and YAML files of directories) that FILE_OPTIONS name, by the path as
    given (`-`, standard input, travels as such: see `standard_input`)."""
    files: dict[str, str] = {}
    for option, value in itertools.pairwise(argv):
        if option not in FILE_OPTIONS or value == "-":
            continue
        path = Path(value)
        try:
            if path.is_dir():
                for child in sorted(path.rglob("*")):
                    if child.suffix in (".yaml", ".yml") and child.is_file():
                        files[str(child)] = child.read_text()
            else:
                files[value] = path.read_text()
        except OSError as exc:
            raise DefinitionError(Problem(f"cannot read {value}: {exc.strerror}", value)) from None
    return files


def standard_input(path: list[str], argv: list[str]) -> tuple[list[str], str | None]:
    """What the command will read from standard input, read here: for `-f -` and the
    `--*-stdin` options; a new password is asked for here, never on the server."""
    if path == ["user", "password"] and "--password-stdin" not in argv:
        from conveyor.cli.common import ask_password

        after = argv[argv.index("password") + 1 :]
        user = next((a for a in after if not a.startswith("-")), "the user")
        return [*argv, "--password-stdin"], ask_password(user) + "\n"
    reads = any(a in FILE_OPTIONS and b == "-" for a, b in itertools.pairwise(argv))
    if reads or any(a.endswith("-stdin") for a in argv):
        return argv, sys.stdin.read()
    return argv, None


def token_for(server: str) -> str:
    token = os.environ.get("CONVEYOR_TOKEN")
    if token:
        return token
    from conveyor.cli.credentials import saved_token

    saved = saved_token(server)
    if saved is None:
        raise Unauthenticated(
            f"no token for {server}: set CONVEYOR_TOKEN, or run `conveyor login {server}`"
        )
    return saved


# A refusal from the server, as the exception the local command would have raised.
_BY_STATUS: dict[int, type[ConveyorError]] = {
    401: Unauthenticated,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    412: Conflict,
    422: DefinitionError,
}


def refusal(response: httpx.Response) -> ConveyorError:
    """The exception the command would have raised locally, from the problem details."""
    try:
        body = response.json()
        detail = str(body.get("detail") or response.reason_phrase)
        problems = [Problem(**p) for p in body.get("problems") or [] if "file" in p]
    except (json.JSONDecodeError, AttributeError, TypeError):
        detail, problems = response.reason_phrase, []
    kind = _BY_STATUS.get(response.status_code, ConveyorError)
    if kind is DefinitionError:
        return DefinitionError(problems or detail)
    return kind(detail)


def run(server: str, argv: list[str], group: Command) -> int | None:
    """Run `argv` on `server`, printing what it prints; its exit code, or None for a command
    about this machine, to run here."""
    try:
        path = command_path(group, argv)
    except typer.Exit as done:
        return done.exit_code
    except ClickException as exc:
        exc.show()
        return exc.exit_code
    if not path or path[0] in LOCAL:
        return None
    argv, given = standard_input(path, without_server(argv))
    body: dict[str, Any] = {
        "argv": argv,
        "files": pack_files(argv),
        "stdin": given,
        "width": out.width if _FIT else PIPED_WIDTH,
        "color": out.is_terminal,
    }
    import httpx  # not at start-up: `conveyor --help` stays fast (bench/cli.py)

    headers = {"Authorization": f"Bearer {token_for(server)}"}
    timeout = httpx.Timeout(30.0, read=READ_TIMEOUT)
    try:
        with (
            httpx.Client(base_url=server, headers=headers, timeout=timeout) as client,
            client.stream("POST", ENDPOINT, json=body) as response,
        ):
            if response.status_code != 200:
                response.read()
                raise refusal(response)
            return _relay(response)
    except httpx.TransportError as exc:
        raise ConveyorError(f"cannot reach the server at {server}: {exc}") from None


def _relay(response: httpx.Response) -> int:
    """Print the streamed output as it comes; the last line holds the exit code."""
    for line in response.iter_lines():
        if not line:
            continue
        message = json.loads(line)
        if "out" in message:
            sys.stdout.write(message["out"])
            sys.stdout.flush()
        elif "err" in message:
            sys.stderr.write(message["err"])
            sys.stderr.flush()
        elif "exit" in message:
            return int(message["exit"])
    raise ConveyorError("the server ended the command without its exit code: see its log")
