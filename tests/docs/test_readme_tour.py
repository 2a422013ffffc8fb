"""The README's five-minute tour, run as written: every command, in order, on a fresh
workspace, each output compared with the README's (see runner.py for what "compared"
ignores and how a block says it varies)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.docs.runner import Command, Shell, rewrite, sessions

ROOT = Path(__file__).resolve().parents[2]
TOUR = "/tmp/tour"


def test_the_tour_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
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
    shell = Shell(workspace, TOUR, {"CONVEYOR_DATABASE_URL": None})
    offset = ROOT.joinpath("README.md").read_text().index("## Five-minute tour")
    first_line = readme.count("\n", 0, offset)
    fixes: list[tuple[Command, list[str]]] = []
    try:
        for command in commands:
            command.line += first_line
            shell.check(command, "README.md", fixes)
    finally:
        monkeypatch.undo()
        time.tzset()
    if fixes:  # DOCS_UPDATE=1: the README now shows what the tour prints
        rewrite(ROOT / "README.md", first_line, fixes)
        pytest.fail(f"README.md updated at {len(fixes)} commands: review the diff")
