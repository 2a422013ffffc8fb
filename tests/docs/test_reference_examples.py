"""docs/reference.md's command examples: its sessions run on the demo's workspace and are
compared (runner.py's conventions), and every `conveyor ...` line of the reference and the
README, sessions and synopses alike, names commands and options the CLI has."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer.main

from conveyor.cli.main import GLOBAL_OPTIONS, app
from tests.cli import inprocess
from tests.docs.runner import Command, Shell, sessions

ROOT = Path(__file__).resolve().parents[2]
PAGES = ("docs/reference.md", "README.md")
LINE = re.compile(r"^(?:\$ )?(conveyor [^`|\n]*)$", re.M)


def test_the_reference_sessions_run_on_the_demo(tmp_path: Path) -> None:
    done = inprocess.run(tmp_path, ["demo", "--dir", str(tmp_path / "ws")])
    assert done.returncode == 0, done.stderr
    page = (ROOT / "docs/reference.md").read_text()
    commands = sessions(page)
    assert any(c.compare for c in commands)
    env = {"CONVEYOR_DATABASE_URL": str(tmp_path / "ws" / "conveyor.db")}
    shell = Shell(tmp_path / "ws", "/tmp/tour", env)
    shell.cwd = tmp_path / "ws"
    fixes: list[tuple[Command, list[str]]] = []
    for command in commands:
        shell.check(command, "docs/reference.md", fixes)
    assert not fixes, "DOCS_UPDATE does not rewrite the reference: fix it by hand"


def _examples() -> list[tuple[str, int, str]]:
    found = []
    for page in PAGES:
        text = (ROOT / page).read_text()
        for block in re.finditer(r"```[a-z]*\n(.*?)```", text, re.S):
            for match in LINE.finditer(block.group(1)):
                line = text.count("\n", 0, block.start(1) + match.start()) + 1
                found.append((page, line, match.group(1)))
    return found


def wrong_in(example: str) -> str | None:
    """What in a `conveyor ...` line the CLI does not have, or None."""
    words = shlex.split(example.split("&&")[0].replace("\\", ""))[1:]
    command = typer.main.get_command(app)
    known = {o for p in command.params for o in p.opts}
    path = ["conveyor"]
    while words and hasattr(command, "commands"):
        word = words.pop(0)
        if word.split("=")[0] in GLOBAL_OPTIONS:
            if "=" not in word and words:
                words.pop(0)
            continue
        if word.startswith("-"):
            if word.split("=")[0] not in known:
                return f"no option {word}"
            continue
        sub = command.commands.get(word)  # type: ignore[attr-defined]
        if sub is None:
            return f"{' '.join(path)} has no {word}"
        command, path = sub, [*path, word]
        known = {o for p in command.params for o in p.opts} | {"-h", "--help"}
    for word in words:
        option = word.strip("[]").split("=")[0]
        if option.startswith("-") and option not in known | set(GLOBAL_OPTIONS):
            return f"{' '.join(path)} has no option {option}"
    return None


def test_the_check_finds_what_drifted() -> None:
    assert wrong_in("conveyor get flows --bogus") == "conveyor get has no option --bogus"
    assert wrong_in("conveyor release promote x") == "conveyor release has no promote"
    assert wrong_in("conveyor --db x.db release wait R [--for qa] --timeout 1m") is None


@pytest.mark.parametrize(("page", "line", "example"), _examples())
def test_every_example_names_commands_and_options_that_exist(
    page: str, line: int, example: str
) -> None:
    assert wrong_in(example) is None, f"{page}:{line}: `{example}`: {wrong_in(example)}"
