"""What every command shares: the consoles, the Conveyor it works on, argument helpers.

Heavy modules (the engine, SQLAlchemy, pydantic) are imported where a command needs them,
never here: `conveyor --help` must start in a tenth of a second (bench/cli.py)."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
out = Console(width=None if _FIT else 160, soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


class State:
    """The global options, and the Conveyor opened on first use."""

    def __init__(self, db: str | None, act_as: str | None = None) -> None:
        self.url, self.act_as = database_url(db), act_as
        self._cv: Conveyor | None = None

    def identity(self) -> Identity:
        """The operating-system user, or whom an admin acts as (`--as`)."""
        from conveyor.model.access import Identity

        me = f"local:{login()}"
        return Identity(self.act_as, real=me) if self.act_as else Identity(me)

    def database(self) -> Path | None:
        """The SQLite file to read, which must exist (None for a server database).

        A typo in --db must not answer with an empty list, as if every release had gone."""
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

        sys.stdout.flush()
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return
    if fmt != "yaml":
        raise usage(f"unknown output '{fmt}': use table, yaml or json", "--output")
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    sys.stdout.flush()
    yaml.dump_all(data if documents else [data], sys.stdout)
