"""POST /api/v1/cli: run a `conveyor` command sent by `conveyor --server` (cli/remote.py).

The command runs in this process, in a thread of its own, against the server's store and
under the caller's identity (an admin's `--as NAME` acts as NAME, recorded as both), with
its `out` and `err` bound to the response: NDJSON lines `{"out": TEXT}`, `{"err": TEXT}`,
then `{"exit": CODE}`. The files it names arrive in the body and are laid out in a private
directory; what the command prints names them as the caller wrote them.
"""

from __future__ import annotations

import io
import json
import logging
import queue
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Annotated

import typer
from fastapi import Depends, FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from typer._click.exceptions import ClickException

from conveyor.api.app import caller
from conveyor.cli.common import State, err, output_to
from conveyor.cli.errors import exit_code
from conveyor.cli.remote import ENDPOINT, FILE_OPTIONS, LOCAL, command_path
from conveyor.engine.service import Conveyor
from conveyor.errors import ConveyorError, DefinitionError, Problem
from conveyor.model.access import Identity

log = logging.getLogger(__name__)
PING = 15.0  # seconds between keep-alive lines while a command prints nothing
LOOKS_WITHOUT_ROLE = frozenset({"whoami"})


class CommandIn(BaseModel):
    argv: list[str] = Field(max_length=500)
    files: dict[str, str] = Field(default_factory=dict, max_length=1000)
    width: int = Field(160, ge=20, le=1000)
    color: bool = False
    stdin: str | None = Field(None, max_length=16 * 1024 * 1024)


class _Files:
    """The caller's files under a private directory: `rel/PATH` for relative paths,
    `abs/PATH` for absolute ones."""

    def __init__(self, files: dict[str, str]) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="conveyor-cli-"))
        try:
            for name, content in files.items():
                target = self.place(name)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content)
        except BaseException:
            self.close()
            raise

    def place(self, name: str) -> Path:
        path = PurePosixPath(name)
        if ".." in path.parts or not path.parts:
            raise DefinitionError(Problem(f"'{name}' is not a file path to send", name))
        where = "abs" if path.is_absolute() else "rel"
        return self.root / where / path.relative_to(path.anchor)

    def shown(self, text: str) -> str:
        """What the command printed, with the caller's paths back in place."""
        return text.replace(f"{self.root}/abs", "").replace(f"{self.root}/rel/", "")

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class _Pipe(io.StringIO):
    def __init__(self, lines: queue.Queue[dict[str, object]], stream: str, files: _Files):
        super().__init__()
        self.lines, self.stream, self.files = lines, stream, files

    def write(self, text: str) -> int:
        if text:
            self.lines.put({self.stream: self.files.shown(text)})
        return len(text)


def _arguments(argv: list[str], files: _Files) -> list[str]:
    """`argv` with each file option's value pointing at its copy."""
    result = list(argv)
    for i in range(len(result) - 1):
        if result[i] in FILE_OPTIONS and result[i + 1] != "-":
            result[i + 1] = str(files.place(result[i + 1]))
    return result


def _check(argv: list[str]) -> tuple[list[str], str | None]:
    """The command's names and `--as`; a command about the caller's machine is refused."""
    from conveyor.cli.main import app

    def refuse(message: str, option: str) -> DefinitionError:
        return DefinitionError(Problem(message, "command line", None, option))

    try:
        path = command_path(typer.main.get_command(app), argv)
    except (ClickException, typer.Exit) as exc:
        raise refuse(f"the command line does not parse: {exc}", "argv") from None
    if not path or path[0] in LOCAL:
        name = path[0] if path else "(none)"
        raise refuse(f"`conveyor {name}` runs on your machine, not on a server", name)
    if any(a == "--db" or a.startswith("--db=") for a in argv):
        raise refuse("--db names a local database: a server has its own", "--db")
    act_as = None
    for i, arg in enumerate(argv[:-1]):
        if arg == "--as":
            act_as = argv[i + 1]
    act_as = next((a.split("=", 1)[1] for a in argv if a.startswith("--as=")), act_as)
    return path, act_as


def _execute(argv: list[str], state: State) -> int:
    from conveyor.cli.main import app

    try:
        result = app(args=argv, prog_name="conveyor", standalone_mode=False, obj=state)
        return result if isinstance(result, int) else 0
    except typer.Exit as done:
        return done.exit_code
    except ClickException as exc:
        err.print(f"error: {exc.format_message()}", markup=False, highlight=False)
        return exc.exit_code
    except ConveyorError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        return exit_code(exc)
    except Exception:  # the command's bug: the caller gets a line, the server's log the trace
        log.exception("conveyor %s failed", " ".join(argv[:2]))
        err.print("error: the command failed on the server (its log has the details)")
        return 1


def run_command(cv: Conveyor, body: CommandIn) -> Iterator[bytes]:
    """Check the command, then run it in a thread, streaming what it prints."""
    path, act_as = _check(body.argv)
    if act_as:
        real = cv.identity.user
        cv = Conveyor(
            cv.store, cv.clock, cv.registry, Identity(act_as, real=real, local=False), cv.workdir
        )
    if act_as or path[0] not in LOOKS_WITHOUT_ROLE:
        cv.may_look()
    files = _Files(body.files)
    argv = _arguments(body.argv, files)
    state = State(cv.store.engine.url.render_as_string(hide_password=False), act_as, served=cv)
    lines: queue.Queue[dict[str, object]] = queue.Queue()

    def work() -> None:
        code = 1
        try:
            out_pipe, err_pipe = _Pipe(lines, "out", files), _Pipe(lines, "err", files)
            given = io.StringIO(body.stdin or "")
            with output_to(out_pipe, err_pipe, body.width, body.color, given):
                code = _execute(argv, state)
        finally:
            files.close()
            lines.put({"exit": code})

    threading.Thread(target=work, name=f"cli {path[0]}", daemon=True).start()

    def stream() -> Iterator[bytes]:
        while True:  # ends with the command: `work` always sends its exit code
            try:
                line = lines.get(timeout=PING)
            except queue.Empty:
                line = {"ping": True}
            yield (json.dumps(line) + "\n").encode()
            if "exit" in line:
                return

    return stream()


def mount(app: FastAPI) -> None:
    @app.post(ENDPOINT, include_in_schema=False)
    def cli(body: CommandIn, cv: Annotated[Conveyor, Depends(caller)]) -> StreamingResponse:
        return StreamingResponse(run_command(cv, body), media_type="application/x-ndjson")
