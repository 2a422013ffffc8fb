"""The README's five-minute tour, run as written: every command, in order, on a fresh
workspace, each output compared with the README's (see runner.py for what "compared"
ignores and how a block says it varies)."""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli import inprocess
from tests.conftest import ME
from tests.docs.runner import Command, Shell, rewrite, sessions
from tests.serving import serving

ROOT = Path(__file__).resolve().parents[2]
TOUR = "/tmp/tour"


class ServerShell(Shell):
    """The tour against `conveyor serve`: once the demo has made the workspace, a server
    serves its database (without an engine: the tour's `run --until-idle` is the engine)
    and every later command goes through `--server`, as the user who ran the demo."""

    def __init__(self, root: Path, workspace: str, env: dict[str, str | None]) -> None:
        super().__init__(root, workspace, env)
        self.stack = contextlib.ExitStack()

    def conveyor(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        if self.cwd != self.root:
            return super().conveyor(args)
        if "CONVEYOR_SERVER" not in self.env:
            token = super().conveyor(["--db", "conveyor.db", "token", "create", ME]).stdout
            self.env["CONVEYOR_TOKEN"] = token.strip()
            db = self.root / "conveyor.db"
            serve = serving(db, self.root, "--no-engine", env={"TZ": "UTC"})
            self.env["CONVEYOR_SERVER"] = self.stack.enter_context(serve)
        assert args[:2] == ["--db", "conveyor.db"], args
        done = inprocess.run_main(self.cwd, args[2:], self.env)
        if args[2:4] == ["audit", "verify"]:  # the trail holds one more event: the token
            count = re.compile(r"(\d+) events")
            done.stdout = count.sub(lambda m: f"{int(m[1]) - 1} events", done.stdout)
        return done


def test_the_tour_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tour(Shell, tmp_path, monkeypatch)


def test_the_tour_runs_against_a_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`conveyor --server URL`: the same commands print the same and exit the same."""
    _tour(ServerShell, tmp_path, monkeypatch)


def _tour(kind: type[Shell], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (ROOT / "README.md").read_text()
    tour = readme[readme.index("## Five-minute tour") : readme.index("## Definitions")]
    commands = sessions(tour)
    assert len(commands) > 30
    assert {"status", "audit log", "release wait"} <= {
        w for c in commands for w in ("status", "audit log", "release wait") if w in c.text
    }
    workspace = tmp_path / "tour"
    # The tour's times are printed in UTC (the README's samples say `times in UTC`).
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    monkeypatch.chdir(tmp_path)
    shell = kind(workspace, TOUR, {"CONVEYOR_DATABASE_URL": None})
    offset = ROOT.joinpath("README.md").read_text().index("## Five-minute tour")
    first_line = readme.count("\n", 0, offset)
    fixes: list[tuple[Command, list[str]]] = []
    try:
        for command in commands:
            command.line += first_line
            shell.check(command, "README.md", fixes)
    finally:
        if isinstance(shell, ServerShell):
            shell.stack.close()
        monkeypatch.undo()
        time.tzset()
    if fixes and kind is Shell:  # DOCS_UPDATE=1: the README now shows what the tour prints
        rewrite(ROOT / "README.md", first_line, fixes)
        pytest.fail(f"README.md updated at {len(fixes)} commands: review the diff")
