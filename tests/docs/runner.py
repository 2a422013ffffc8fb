"""Run the shell sessions a markdown page shows, and compare what they print.

Conventions, for doc authors (the markers are HTML comments: GitHub does not show them):

- A fenced block with lines starting `$ ` is a session: each such line (continued by a
  trailing backslash) is a command, the lines up to the next `$ ` its expected output
  (stdout, then stderr). It is run and compared.
- A line `...` in an expected output stands for any number of lines.
- Compared modulo what changes between runs: times and dates, commit ids and other hex
  ids, durations and percentages (health arithmetic over real seconds), the bars of the
  timeline (only their presence counts) and runs of spaces (table alignment).
- `<!-- run -->` before a block without `$ `: each line is a command, run, not compared.
- `<!-- not compared: REASON -->` before a session: its commands run, their output is not
  compared (REASON says what varies: e.g. which environments share a commit).
- `<!-- skip: REASON -->` before a block: not run.

Commands are `conveyor ...` (run in this process, as the console script runs it), `git
...` (a real git, argument list, no shell) and `cd DIR`. Paths under the page's
workspace (the README's `/tmp/tour`) are mapped to the test's temporary directory, and
the login name of whoever runs the tests to `you` (`local:you`).
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.cli import inprocess
from tests.conftest import ME

FENCE = re.compile(r"(?:<!-- (?P<marker>[^>]*?) -->\n)?```[a-z]*\n(?P<body>.*?)```", re.S)
ELLIPSIS = "..."


@dataclass
class Command:
    line: int  # in the page, 1-based
    text: str
    expected: list[str] = field(default_factory=list)
    compare: bool = True
    output_line: int = 0  # where `expected` starts in the page, 1-based


def sessions(page: str) -> list[Command]:
    """Every command of the page, in order, with what it should print."""
    commands: list[Command] = []
    for match in FENCE.finditer(page):
        marker = (match.group("marker") or "").strip()
        body = match.group("body")
        first = page.count("\n", 0, match.start("body")) + 1
        lines = body.splitlines()
        if marker.startswith("skip:"):
            continue
        if marker == "run":
            commands += [Command(first + i, t, [], False) for i, t in enumerate(lines) if t]
            continue
        if not any(t.startswith("$ ") for t in lines):
            continue
        compare = not marker.startswith("not compared:")
        i = 0
        while i < len(lines):
            text = lines[i]
            if not text.startswith("$ "):
                i += 1
                continue
            start, command = i, text[2:]
            while command.endswith("\\") and i + 1 < len(lines):
                i += 1
                command = command[:-1].rstrip() + " " + lines[i].strip()
            i += 1
            output_at = first + i
            output: list[str] = []
            while i < len(lines) and not lines[i].startswith("$ "):
                output.append(lines[i])
                i += 1
            while output and not output[-1].strip():
                output.pop()
            commands.append(Command(first + start, command, output, compare, output_at))
    return commands


_NORMAL = [
    (
        re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d| [A-Z]{2,5})?"),
        "<time>",
    ),
    (re.compile(r"\b\d\d:\d\d:\d\d\b"), "<t>"),
    (re.compile(r"\b[0-9a-f]{7,40}\b"), "<id>"),
    (re.compile(r"\b\d+(\.\d+)?%"), "<pct>"),
    (re.compile(r"\b(\d+(w|d|h|m|s|ms))+\b"), "<dur>"),
    (re.compile(r"█+"), "█"),
    (re.compile(r"[ \t]+"), " "),
]


def normal(line: str) -> str:
    for pattern, replacement in _NORMAL:
        line = pattern.sub(replacement, line)
    return line.strip()


def matches(expected: list[str], actual: list[str]) -> bool:
    """Line by line after `normal`; a `...` line matches any number of lines."""
    pattern = "".join(
        r"(?:[^\n]*\n)*?" if e.strip() == ELLIPSIS else re.escape(normal(e)) + r"\n"
        for e in expected
    )
    text = "".join(normal(a) + "\n" for a in actual)
    return re.fullmatch(pattern, text) is not None


class Shell:
    """Runs a page's commands in order, in `root` (for `workspace` in the page)."""

    def __init__(self, root: Path, workspace: str, env: dict[str, str | None]) -> None:
        self.root, self.workspace, self.env = root, workspace, env
        self.cwd = root.parent  # the workspace itself is made by the first command

    def path(self, text: str) -> str:
        return text.replace(self.workspace, str(self.root))

    def run(self, command: Command) -> list[str]:
        argv = shlex.split(self.path(command.text))
        if argv[0] == "cd":
            self.cwd = Path(argv[1])
            return []
        if argv[0] == "conveyor":
            done = self.conveyor(argv[1:])
        elif argv[0] == "git":
            done = subprocess.run(argv, cwd=self.cwd, capture_output=True, text=True, timeout=60)
        else:
            raise AssertionError(f"line {command.line}: cannot run {argv[0]!r} here")
        said = (done.stdout + done.stderr).replace(str(self.root), self.workspace)
        said = said.replace(ME, "local:you")
        return [line for line in said.splitlines()]

    def conveyor(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        return inprocess.run(self.cwd, args, self.env)

    def check(self, command: Command, page: str, fixes: list[tuple[Command, list[str]]]) -> None:
        """Run and compare; with DOCS_UPDATE=1 in the environment, a mismatch without `...`
        in its expected output is collected in `fixes` (see `rewrite`) instead of failing."""
        actual = [line.rstrip() for line in self.run(command)]
        while actual and not actual[-1].strip():
            actual.pop()
        if command.compare and not matches(command.expected, actual):
            if os.environ.get("DOCS_UPDATE") == "1" and ELLIPSIS not in command.expected:
                fixes.append((command, actual))
                return
            diff = "\n".join(
                difflib.unified_diff(
                    [normal(e) for e in command.expected],
                    [normal(a) for a in actual],
                    "documented",
                    "actual",
                    lineterm="",
                )
            )
            raise AssertionError(
                f"{page}:{command.line}: `{command.text}` printed something else "
                f"(normalized):\n{diff}\n--- actual output ---\n" + "\n".join(actual)
            )


def rewrite(page: Path, offset: int, fixes: list[tuple[Command, list[str]]]) -> None:
    """Put the actual outputs in the page, in place of the documented ones."""
    lines = page.read_text().splitlines()
    for command, actual in sorted(fixes, key=lambda f: -f[0].output_line):
        start = offset + command.output_line - 1
        lines[start : start + len(command.expected)] = actual
    page.write_text("\n".join(lines) + "\n")
