"""What every command shares: the consoles, the Conveyor it works on, argument helpers.

Heavy modules (the engine, SQLAlchemy, pydantic) are imported where a command needs them,
never here: `conveyor --help` must start in a tenth of a second (bench/cli.py)."""

from __future__ import annotations

import getpass
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

import typer
from rich.console import Console

from conveyor.errors import DefinitionError, NotFound, Problem
from conveyor.store.url import database_url, sqlite_file

if TYPE_CHECKING:
    from conveyor.engine.service import Conveyor
    from conveyor.model.access import Identity

# Piped output (CI logs, `make demo | tee`) keeps a readable width instead of 80 columns,
# unless COLUMNS says how wide to draw.
_FIT = sys.stdout.isatty() or "COLUMNS" in os.environ
PIPED_WIDTH = 160


class _Bound(threading.local):
    consoles: tuple[Console, Console] | None = None
    stdin: IO[str] | None = None


_bound = _Bound()


class _ThreadConsole:
    """The terminal's console, or in a thread running a command for a remote caller
    (cli/remote_exec.py), that command's: the server runs several commands at once."""

    def __init__(self, which: int, default: Console) -> None:
        self._which, self._default = which, default

    def _console(self) -> Console:
        consoles = _bound.consoles
        return consoles[self._which] if consoles else self._default

    def __getattr__(self, name: str) -> Any:
        return getattr(self._console(), name)

    # `with console:` (rich's Live) looks these up on the type, not through __getattr__.
    def __enter__(self) -> Console:
        return self._console().__enter__()

    def __exit__(self, *exc: object) -> None:
        self._console().__exit__(*exc)


out = cast(Console, _ThreadConsole(0, Console(width=None if _FIT else PIPED_WIDTH, soft_wrap=True)))
err = cast(Console, _ThreadConsole(1, Console(stderr=True, soft_wrap=True)))


@contextmanager
def output_to(
    stdout: IO[str], stderr: IO[str], width: int, color: bool, stdin: IO[str] | None = None
) -> Iterator[None]:
    """Send this thread's `out` and `err` to these files, drawn `width` columns wide, and
    read its standard input (`stdin()`) from `stdin`."""

    def console(file: IO[str]) -> Console:
        return Console(
            file=file,
            width=width,
            soft_wrap=True,
            force_terminal=color,
            color_system="standard" if color else None,
        )

    _bound.consoles, _bound.stdin = (console(stdout), console(stderr)), stdin
    try:
        yield
    finally:
        _bound.consoles, _bound.stdin = None, None


def stdin() -> IO[str]:
    """This command's standard input: the terminal's, or what a remote caller sent."""
    return _bound.stdin or sys.stdin


class State:
    """The global options, and the Conveyor opened on first use."""

    def __init__(
        self, db: str | None, act_as: str | None = None, served: Conveyor | None = None
    ) -> None:
        """`served`: the caller's Conveyor when a server runs the command (remote_exec.py)."""
        self.url, self.act_as = database_url(db), act_as
        self._cv, self.served = served, served

    def identity(self) -> Identity:
        """The operating-system user, or whom an admin acts as (`--as`)."""
        from conveyor.model.access import Identity

        if self.served is not None:
            return self.served.identity

        me = f"local:{login()}"
        return Identity(self.act_as, real=me) if self.act_as else Identity(me)

    def database(self) -> Path | None:
        """The SQLite file to read, which must exist (None for a server database).

        A typo in --db must not answer with an empty list, as if every release had gone.
        On a server: None, after checking that the caller may look (files are not read
        behind the service's back there)."""
        if self.served is not None:
            self.served.may_look()
            return None
        path = sqlite_file(self.url)
        if path is not None and not path.exists():
            raise NotFound(
                f"no database at {path}: `conveyor init` creates one there (so does the first "
                "`conveyor apply -f FILE`); to use another, give --db PATH or set "
                "CONVEYOR_DATABASE_URL"
            )
        return path

    def cv(self, create: bool = False) -> Conveyor:
        if self._cv is None:
            if not create:
                self.database()
            from conveyor.engine.service import Conveyor

            self._cv = Conveyor.open(self.url, actor=self.identity())
        return self._cv

    def close(self) -> None:
        """When the command ends, however it ends: the engine stops, the trail is signed."""
        cv, self._cv = self._cv, None
        if cv is not None:
            cv.close()


def state_of(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    assert isinstance(obj, State)
    return obj


def cv_of(ctx: typer.Context, create: bool = False) -> Conveyor:
    return state_of(ctx).cv(create)


def login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def usage(message: str, option: str) -> DefinitionError:
    """A command-line mistake, naming the option (or argument) at fault: exit code 2."""
    return DefinitionError(Problem(message, "command line", None, option))


def check_output(output: str, allowed: tuple[str, ...]) -> None:
    if output not in allowed:
        choices = ", ".join(allowed[:-1]) + " or " + allowed[-1]
        raise usage(f"unknown output '{output}': use {choices}", "-o")


def text_or_data(output: str) -> None:
    """A view drawn for people (text), or its data for scripts (json, yaml)."""
    check_output(output, ("text", "json", "yaml"))


def pairs(values: list[str], option: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for v in values:
        key, sep, value = v.partition("=")
        if not sep or not key:
            raise usage(f"'{v}' is not KEY=VALUE", option)
        result[key] = value
    return result


def dump(data: Any, fmt: str, documents: bool = False) -> None:
    """JSON (one style: camelCase keys, RFC 3339 UTC times, see jsonstyle.py), or YAML; with
    `documents`, a list becomes a stream of `---` documents."""
    from conveyor.jsonstyle import plain

    data = plain(data)
    if fmt == "json":
        import json

        text(json.dumps(data, indent=2, ensure_ascii=False))
        return
    if fmt != "yaml":
        raise usage(f"unknown output '{fmt}': use table, yaml or json", "--output")
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.dump_all(data if documents else [data], out.file)


def text(value: str, end: str = "\n") -> None:
    """Print `value` as it is: no markup, highlighting or wrapping (JSON, drawings, tokens)."""
    out.file.write(value + end)
    out.file.flush()


def ask_password(user: str) -> str:
    """A new password, typed twice at the terminal (not echoed)."""
    secret = getpass.getpass(f"new password for {user}: ")
    if getpass.getpass("again: ") != secret:
        raise usage("the two passwords differ: nothing changed", "password")
    return secret
