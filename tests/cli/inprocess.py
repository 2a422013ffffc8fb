"""`conveyor ARGS` run in this process exactly as the console script runs it: a
ConveyorError becomes `error: ...` on stderr and its exit code, as `main()` does; anything
else propagates (the script would print a traceback). Ten times faster than a process,
which the tests keep only for what needs one: start-up, signals, the console script."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from typer.testing import CliRunner

from conveyor.cli.errors import exit_code
from conveyor.cli.main import app
from conveyor.errors import ConveyorError


def run(
    cwd: Path,
    args: Sequence[str],
    env: Mapping[str, str | None] | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    with contextlib.chdir(cwd):
        result = CliRunner().invoke(app, list(args), env=dict(env or {}), input=stdin)
    code, stderr = result.exit_code, result.stderr
    if isinstance(result.exception, ConveyorError):
        code = exit_code(result.exception)
        stderr += f"error: {result.exception}\n"
    elif result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(["conveyor", *args], code, result.stdout, stderr)


def run_main(
    cwd: Path,
    args: Sequence[str],
    env: Mapping[str, str | None] | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """`conveyor ARGS` through `main()`, as the console script starts it: the path that
    `--server` takes (cli/remote.py), in this process."""
    from conveyor.cli.main import main

    runner = CliRunner()
    code = 0
    with contextlib.chdir(cwd), runner.isolation(stdin, dict(env or {})) as (out, err, _):
        with contextlib.suppress(SystemExit), _argv(["conveyor", *args]):
            try:
                main()
            except SystemExit as done:
                code = done.code if isinstance(done.code, int) else 1
                raise
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    return subprocess.CompletedProcess(["conveyor", *args], code, stdout, stderr)


@contextlib.contextmanager
def _argv(argv: list[str]) -> Iterator[None]:
    import sys

    saved, sys.argv = sys.argv, argv
    try:
        yield
    finally:
        sys.argv = saved
