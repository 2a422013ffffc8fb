"""What the git actions share: settings, a safe `git` runner, and a commit-and-push that
takes its turn at the branch's working copy (`gitcopies`) and wins racing pushes (`gitpush`).

Every call is an argument list; a value from a release (a version, a label) is always an
argument after `--` or inside one, never an option. Secrets (an https token) reach git
through its environment, never its command line, and are scrubbed from all output.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import TypeVar

from pydantic import Field, field_validator

from conveyor.actions.base import (
    ActionContext,
    ActionResult,
    ActionSettings,
    refuse_password,
    rendered_settings,
)
from conveyor.actions.gitcopies import Job, WorkingCopies
from conveyor.actions.gitpush import push
from conveyor.clock import Deadline
from conveyor.errors import TerminalError, TransientError
from conveyor.model.template import TemplateError, render

DEFAULT_MESSAGE = "Promote ${{ release.product }} ${{ release.version }} to ${{ environment.name }}"
DEFAULT_AUTHOR = "Conveyor <conveyor@localhost>"
PUSH_TRIES = 10  # git.merge and git.tag: how many times they redo their work after a race
PATH_TRAILER = "Conveyor-Path"  # "ENV PATH": which environment a path in the commit is for
_BRANCH = re.compile(r"^(?!-)(?!.*\.\.)(?!.*//)[A-Za-z0-9._/-]+(?<![./])$")
_PERSON = re.compile(r"^\s*([^<>]+?)\s*<([^<>\s]+)>\s*$")
_SCHEMES = ("file://", "git://", "https://", "http://", "ssh://")


class GitSettings(ActionSettings):
    """Where to write, and how the commit reads."""

    repo: str = Field(min_length=1, description="file://, git://, https://, ssh:// or a path")
    branch: str = "main"
    message: str = DEFAULT_MESSAGE
    author: str = DEFAULT_AUTHOR
    committer: str | None = None
    tokenEnv: str | None = Field(
        None, description="Name of an environment variable holding an https token"
    )
    batch: bool = Field(
        False, description="Share one commit with this release's promotions waiting on the branch"
    )

    @field_validator("repo")
    @classmethod
    def _repo(cls, value: str) -> str:
        if value.startswith("-"):
            raise ValueError("a repository cannot start with '-'")
        return refuse_password(
            value, "remove it, and name the environment variable that holds it in tokenEnv"
        )

    @field_validator("branch")
    @classmethod
    def _branch(cls, value: str) -> str:
        if "${{" not in value and not _BRANCH.match(value):
            raise ValueError(f"'{value}' is not a branch name")
        return value

    @field_validator("author", "committer")
    @classmethod
    def _person(cls, value: str | None) -> str | None:
        if value is not None and not _PERSON.match(value):
            raise ValueError(f"'{value}' is not 'Name <email>'")
        return value


def check_relative(path: str) -> str:
    """Refuse a path that would leave the repository (apply time, where it is literal)."""
    if "${{" in path:
        return path  # known at run time only; `inside` checks it then
    p = PurePosixPath(path)
    if p.is_absolute() or ".." in p.parts or path.startswith("-"):
        raise ValueError(
            f"path '{path}' must stay inside the repository (no '/', '..' or '-' start)"
        )
    return path


def inside(root: Path, path: str) -> Path:
    """`root/path`, refused if it escapes the repository, by `..` or through a symlink."""
    try:
        check_relative(path)
    except ValueError as exc:
        raise TerminalError(str(exc)) from None
    target = (root / path).resolve()
    if not target.is_relative_to(root.resolve()):
        raise TerminalError(f"path '{path}' leads outside the repository")
    return target


class Git:
    """Runs git in one directory with a fixed environment; scrubs secrets from what it says."""

    def __init__(self, cwd: Path, env: dict[str, str], secrets: list[str], timeout: float) -> None:
        self.cwd, self.env, self.secrets, self.timeout = cwd, env, secrets, timeout

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        try:
            proc = subprocess.run(
                ["git", "-c", "core.hooksPath=/dev/null", *args],
                cwd=self.cwd,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise TransientError(f"git {args[0]} timed out after {self.timeout:g}s") from None
        except FileNotFoundError:
            raise TerminalError("git is not installed") from None
        proc.stdout, proc.stderr = self.scrub(proc.stdout), self.scrub(proc.stderr)
        if check and proc.returncode != 0:
            raise TransientError(f"git {args[0]} failed: {proc.stderr.strip() or proc.stdout}")
        return proc

    def at(self, cwd: Path) -> Git:
        """The same git, run in `cwd`."""
        return Git(cwd, self.env, self.secrets, self.timeout)

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def git_env(settings: GitSettings) -> tuple[dict[str, str], list[str]]:
    """The environment for git and the secrets it holds."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_CONFIG")}
    env.update(GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1", LC_ALL="C")
    for role, person in (("AUTHOR", settings.author), ("COMMITTER", settings.committer)):
        name, email = _PERSON.match(person or settings.author).groups()  # type: ignore[union-attr]
        env[f"GIT_{role}_NAME"], env[f"GIT_{role}_EMAIL"] = name, email
    secrets: list[str] = []
    if settings.tokenEnv:
        token = os.environ.get(settings.tokenEnv)
        if not token:
            raise TerminalError(f"environment variable {settings.tokenEnv} (tokenEnv) is not set")
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        # Through git's environment, not its arguments: `ps` never shows it.
        env.update(
            GIT_CONFIG_COUNT="1",
            GIT_CONFIG_KEY_0="http.extraHeader",
            GIT_CONFIG_VALUE_0=f"Authorization: Basic {basic}",
        )
        secrets += [token, basic]
    return env, secrets


def remote_url(repo: str, workdir: Path) -> str:
    """A URL git accepts; a bare path is taken relative to the engine's working directory."""
    if repo.startswith(_SCHEMES) or re.match(r"^[\w.-]+@[\w.-]+:", repo):
        return repo
    return str((workdir / repo).resolve())


def commit_message(ctx: ActionContext, settings: GitSettings) -> str:
    # A message the user wrote was rendered with the other settings; only the default,
    # which never went through rendering, is rendered here (a value is never rendered twice).
    subject = settings.message
    if subject == DEFAULT_MESSAGE:
        try:
            subject = render(subject, ctx.template)
        except TemplateError as exc:
            raise TerminalError(f"message: {exc}") from None
    subject = subject.strip()
    release = ctx.template.get("release", {})
    env = ctx.template.get("environment", {})
    trailers = [f"Conveyor-Release: {release.get('product')}@{release.get('version')}"]
    if env:
        trailers.append(f"Conveyor-Environment: {env.get('name')}")
    if ctx.promotion_id is not None:
        trailers.append(f"Conveyor-Promotion: {ctx.promotion_id}")
    return f"{subject}\n\n" + "\n".join(trailers) + "\n"


S = TypeVar("S", bound=GitSettings)


def member_settings(model: type[S], ctx: ActionContext) -> S:
    """`rendered_settings` for an action that calls `commit_and_push`: when they are bad,
    its batch group is told not to wait for it."""
    try:
        return rendered_settings(model, ctx)
    except Exception:
        WorkingCopies.under(ctx.data_dir).leave(ctx)
        raise


def commit_and_push(
    ctx: ActionContext, settings: GitSettings, edit: Callable[[Path], list[str]], what: str
) -> ActionResult:
    """In the branch's turn: sync, edit, commit if anything changed, push.

    `settings` come rendered (`member_settings`). `edit` gets the working copy's root
    and returns the paths it wrote. A file that
    already says what it would write makes no commit: re-running changes nothing. With
    `batch`, the holder of the branch also makes the edits of this release's other
    promotions waiting for it, and all share one commit; the members of a batch group
    (`ctx.batch_key`) are all in the same commit (see `gitcopies`).
    """
    copies = WorkingCopies.under(ctx.data_dir)
    deadline = ctx.deadline()
    try:
        env, secrets = git_env(settings)
        url = remote_url(settings.repo, ctx.workdir)
        branch = settings.branch  # rendered with the rest of the settings, never twice
        if not _BRANCH.match(branch):
            raise TerminalError(f"'{branch}' is not a branch name")
    except Exception:
        copies.leave(ctx)  # it will not arrive: its batch group must not wait for it
        raise
    if not settings.batch:
        copies.leave(ctx)
    path = copies.path(url, branch)
    job = Job(ctx, settings, edit, what)
    with copies.turn(path, job, deadline) as jobs:
        if jobs:
            try:
                with copies.flock(path, deadline, ctx.cancel):
                    git = copies.open(
                        path, url, branch, Git(ctx.workdir, env, secrets, ctx.timeout_s)
                    )
                    _commit(git, branch, jobs, ctx.deadline())
            except Exception as exc:
                for j in jobs:
                    j.error = j.error or exc
    if job.error is not None:
        raise job.error
    assert job.result is not None
    return job.result


def _subject(subjects: list[str]) -> str:
    """One subject for a batch: "Promote web 1.2.3 to prod, prod-eu" rather than the first."""
    unique = list(dict.fromkeys(subjects))
    heads = {s.rpartition(" to ")[0] for s in unique}
    if len(unique) > 1 and len(heads) == 1 and all(" to " in s for s in unique):
        return f"{heads.pop()} to " + ", ".join(s.rpartition(" to ")[2] for s in unique)
    return "; ".join(unique)


def _commit(git: Git, branch: str, jobs: list[Job], deadline: Deadline) -> None:
    """Make the jobs' edits, commit them once and push; each job gets its result or error."""
    paths: list[str] = []
    done: list[Job] = []
    changes: list[str] = []
    for j in jobs:
        if j.ctx.cancel.is_set():
            j.error = TerminalError("cancelled before its change was made")
            continue
        try:
            edited = j.edit(git.cwd)
        except Exception as exc:  # one bad edit must not sink the others of its batch
            j.error = exc
            continue
        paths += edited
        done.append(j)
        env = j.ctx.template.get("environment", {}).get("name")
        # Which paths are whose: a revert of one environment leaves the others' alone.
        changes += [f"{PATH_TRAILER}: {env} {p}" for p in edited if env]
    if not done:
        return
    what = "; ".join(dict.fromkeys(j.what for j in done))
    if paths:
        git("add", "--", *dict.fromkeys(paths))
    if not paths or git("diff", "--cached", "--quiet", check=False).returncode == 0:
        head = git("rev-parse", "--short", "HEAD").stdout.strip()
        result = ActionResult(True, f"{what}: already so at {head}; nothing to commit", "unchanged")
    else:
        messages = [commit_message(j.ctx, j.settings) for j in done]
        subject = _subject([m.partition("\n\n")[0] for m in messages])
        lines = [t for m in messages for t in m.partition("\n\n")[2].splitlines()]
        trailers = dict.fromkeys([*lines, *changes])
        message = f"{subject}\n\n" + "\n".join(trailers) + "\n"
        if any(j.ctx.cancel.is_set() for j in done):
            raise TerminalError("cancelled before pushing; nothing was pushed")
        git("commit", "--quiet", "--no-verify", "-m", message)
        pushed = push(git, branch, deadline, lambda: any(j.ctx.cancel.is_set() for j in done))
        head = git("rev-parse", "--short", "HEAD").stdout.strip()
        note = pushed.note
        shared = f", one commit for {len(done)} promotions" if len(done) > 1 else ""
        result = ActionResult(
            True, f"{what}: committed {head} to {branch}{note}{shared}", f"commit {head}"
        )
    for j in done:
        j.result = result
