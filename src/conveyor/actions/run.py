"""`run`: run a command. An argument list by default; `shell: true` for a string the user wrote.

Templated values become single arguments (argument list) or environment variables quoted
by the shell (`shell: true`), never shell text, so a version or a label cannot inject.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import replace
from typing import Annotated, ClassVar

from pydantic import Field, model_validator

from conveyor.actions.base import (
    ActionContext,
    ActionResult,
    ActionSettings,
    declared_secrets,
    rendered_settings,
    scrub,
    truncate,
)
from conveyor.errors import TerminalError
from conveyor.model.template import TemplateError, render, render_tree

SLICE_S = 0.1  # how often a running command looks at its cancel flag
# What a task gets of the engine's environment without asking: enough to find programs and
# behave (home, locale, time zone, temporary directory). Nothing else reaches it (the
# database URL, tokens meant for other tasks) unless the task names it in `passEnv`.
INHERITED = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR", "TERM")
_VARIABLE = r"^[A-Za-z_][A-Za-z0-9_]*$"


class RunSettings(ActionSettings):
    args: list[str] | None = Field(None, min_length=1)
    command: str | None = None
    shell: bool = False
    env: dict[str, str] = Field(default_factory=dict)
    passEnv: list[Annotated[str, Field(pattern=_VARIABLE)]] = Field(
        default_factory=list,
        description="names of the engine's environment variables the task also gets",
    )
    workingDir: str | None = None

    @model_validator(mode="after")
    def _one_form(self) -> RunSettings:
        if self.shell and (self.command is None or self.args is not None):
            raise ValueError("with shell: true, give `command` (a string), not `args`")
        if not self.shell and (self.args is None or self.command is not None):
            raise ValueError("give `args` (a list of arguments), or `command` with shell: true")
        return self


class RunAction:
    name: ClassVar[str] = "run"
    Settings: ClassVar[type[ActionSettings]] = RunSettings

    def run(self, ctx: ActionContext) -> ActionResult:
        wanted = (*INHERITED, *(ctx.raw.get("passEnv") or []))
        env = {name: os.environ[name] for name in wanted if name in os.environ} | dict(ctx.env)
        if ctx.raw.get("shell"):
            settings, argv = self._shell(ctx, env)
        else:
            settings = rendered_settings(RunSettings, ctx)
            assert settings.args is not None
            argv = settings.args
        env.update(
            render_tree(settings.env, ctx.template) if ctx.raw.get("shell") else settings.env
        )
        cwd = ctx.workdir / settings.workingDir if settings.workingDir else ctx.workdir
        if not cwd.is_dir():
            raise TerminalError(f"working directory {cwd} does not exist")
        result = _execute(argv, str(cwd), env, ctx)
        # What a task prints is stored and shown: never the operator's declared secrets.
        secrets = declared_secrets(os.environ) + declared_secrets(ctx.env)
        if not secrets:
            return result
        return replace(
            result, output=scrub(result.output, secrets), summary=scrub(result.summary, secrets)
        )

    @staticmethod
    def _shell(ctx: ActionContext, env: dict[str, str]) -> tuple[RunSettings, list[str]]:
        raw = {k: v for k, v in ctx.raw.items() if k != "command"}
        settings = RunSettings.model_validate({**raw, "command": str(ctx.raw.get("command", ""))})
        values: list[str] = []

        def as_variable(value: str) -> str:
            values.append(value)
            return f'"${{CONVEYOR_VALUE_{len(values)}}}"'

        try:
            command = render(str(settings.command), ctx.template, sub=as_variable)
        except TemplateError as exc:
            raise TerminalError(f"template: {exc}") from None
        env.update({f"CONVEYOR_VALUE_{i}": v for i, v in enumerate(values, 1)})
        return settings, ["/bin/sh", "-c", command]


def _execute(argv: list[str], cwd: str, env: dict[str, str], ctx: ActionContext) -> ActionResult:
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            start_new_session=True,
        )
    except OSError as exc:
        raise TerminalError(f"cannot start {argv[0]}: {exc.strerror}") from None
    # Counting slices alone ran about 1.5% late (10 minutes: 9 s), past the runner's grace
    # for a timeout; the deadline keeps it on time, the count keeps the loop bounded.
    deadline = time.monotonic() + ctx.timeout_s
    for _ in range(max(1, int(ctx.timeout_s / SLICE_S)) + 1):
        if ctx.cancel.is_set():
            out = _stop(proc)
            return ActionResult(False, truncate(out), "cancelled", retryable=False)
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:  # communicate keeps what was read before a TimeoutExpired
            out, _ = proc.communicate(timeout=min(SLICE_S, left))
        except subprocess.TimeoutExpired:
            continue
        output = truncate(out or "")
        if proc.returncode == 0:
            return ActionResult(True, output, "exit 0")
        return ActionResult(False, output, f"exit {proc.returncode}")
    out = _stop(proc)
    return ActionResult(False, truncate(out), f"timed out after {ctx.timeout_s:g}s")


def _stop(proc: subprocess.Popen[str]) -> str:
    """Stop the whole process group (a shell's children too) and collect what it printed."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            out, _ = proc.communicate(timeout=2)
            return out or ""
        except subprocess.TimeoutExpired:
            continue
    out, _ = proc.communicate()
    return out or ""
