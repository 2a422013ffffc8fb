"""What every command shares: the consoles, the Conveyor it works on, argument helpers."""

from __future__ import annotations

import getpass
import json
import sys
from typing import Any

import typer
from rich.console import Console

from conveyor.engine.service import Conveyor
from conveyor.errors import DefinitionError, Problem

# Piped output (CI logs, `make demo | tee`) keeps a readable width instead of 80 columns.
out = Console(width=None if sys.stdout.isatty() else 160, soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


class State:
    def __init__(self, db: str | None, actor: str) -> None:
        self.db, self.actor = db, actor
        self._cv: Conveyor | None = None

    def cv(self) -> Conveyor:
        if self._cv is None:
            self._cv = Conveyor.open(self.db, actor=self.actor)
        return self._cv


def state_of(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    assert isinstance(obj, State)
    return obj


def cv_of(ctx: typer.Context) -> Conveyor:
    return state_of(ctx).cv()


def login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def usage(message: str, option: str) -> DefinitionError:
    """A command-line mistake, naming the option (or argument) at fault: exit code 2."""
    return DefinitionError(Problem(message, "command line", None, option))


def text_or_json(output: str) -> None:
    if output not in ("text", "json"):
        raise usage(f"unknown output '{output}': use text or json", "-o")


def pairs(values: list[str], option: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for v in values:
        key, sep, value = v.partition("=")
        if not sep or not key:
            raise usage(f"'{v}' is not KEY=VALUE", option)
        result[key] = value
    return result


def dump(data: Any, fmt: str, documents: bool = False) -> None:
    """JSON, or YAML; with `documents`, a list becomes a stream of `---` documents."""
    if fmt == "json":
        out.print_json(json.dumps(data, default=str))
        return
    if fmt != "yaml":
        raise usage(f"unknown output '{fmt}': use table, yaml or json", "--output")
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    sys.stdout.flush()
    yaml.dump_all(data if documents else [data], sys.stdout)
