"""`git.revert`: roll back by reverting the commit that promoted a release to an environment.

The commit is found by its trailers (`Conveyor-Release`, `Conveyor-Environment`), which
every Conveyor commit carries; `git log --grep` narrows the search and the trailers are
then compared exactly (a grep for `shop@1.2.3` also matches `shop@1.2.30`). The revert
says `Conveyor-Revert-Of: <sha>`, which is how a re-run knows it has nothing left to do.
"""

from __future__ import annotations

import re
from typing import ClassVar

from pydantic import field_validator

from conveyor.actions.base import ActionContext, ActionResult, ActionSettings, rendered_settings
from conveyor.actions.gitrefs import conflicts, strict
from conveyor.actions.gitrepo import (
    Git,
    GitSettings,
    WorkingCopies,
    commit_message,
    git_env,
    push,
    remote_url,
)
from conveyor.errors import TerminalError
from conveyor.model.template import TemplateError, render

REVERT_OF = "Conveyor-Revert-Of"
# Values are searched for (as data, never options) and written into trailers: one line each.
_VALUE = re.compile(r"^(?!-)[^\x00-\x1f\x7f]+$")


class RevertSettings(GitSettings):
    release: str = "${{ release.product }}@${{ release.version }}"
    environment: str = "${{ environment.name }}"

    @field_validator("release", "environment")
    @classmethod
    def _value(cls, value: str) -> str:
        if not _VALUE.match(value):
            raise ValueError(f"'{value}' must be one line and cannot start with '-'")
        return value

    @field_validator("release")
    @classmethod
    def _release(cls, value: str) -> str:
        if "@" not in value and "${{" not in value:
            raise ValueError(f"'{value}' is not PRODUCT@VERSION")
        return value


def _field(ctx: ActionContext, settings: RevertSettings, name: str) -> str:
    """A rendered setting. Defaults are templates that `rendered_settings` never saw; a
    given value was rendered already and is not rendered twice (a label could hold `${{`)."""
    value: str = getattr(settings, name)
    if name not in settings.model_fields_set:
        try:
            value = render(value, ctx.template)
        except TemplateError as exc:
            raise TerminalError(f"{name}: {exc}") from None
    if not _VALUE.match(value) or "${{" in value:
        raise TerminalError(f"{name}: '{value}' must be one line and cannot start with '-'")
    if name == "release" and "@" not in value:
        raise TerminalError(f"release: '{value}' is not PRODUCT@VERSION")
    return value


def _commits(git: Git, *args: str) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(id, subject, trailers) of each commit `git log -F *args` finds, newest first."""
    out = git("log", "-F", "--format=%H%x00%s%x00%(trailers:only,unfold)%x01", *args).stdout
    found = []
    for record in out.split("\x01"):
        if not record.strip():
            continue
        sha, subject, block = record.strip("\n").split("\x00", 2)
        pairs = [line.partition(":") for line in block.splitlines() if ":" in line]
        found.append((sha, subject, [(k.strip(), v.strip()) for k, _, v in pairs]))
    return found


def promoted_by(git: Git, release: str, environment: str) -> tuple[str, str] | None:
    """The newest commit that promoted `release` to `environment` (reverts excluded: they
    carry the same trailers, and reverting a revert is not a rollback)."""
    want = {("Conveyor-Release", release), ("Conveyor-Environment", environment)}
    grep = [f"--grep=Conveyor-Release: {release}", f"--grep=Conveyor-Environment: {environment}"]
    for sha, subject, trailers in _commits(git, "--all-match", *grep, "HEAD"):
        if want <= set(trailers) and not any(key == REVERT_OF for key, _ in trailers):
            return sha, subject
    return None


def reverted(git: Git, sha: str) -> bool:
    since = _commits(git, f"--grep={REVERT_OF}: {sha}", f"{sha}..HEAD")
    return any((REVERT_OF, sha) in trailers for _, _, trailers in since)


class RevertAction:
    name: ClassVar[str] = "git.revert"
    Settings: ClassVar[type[ActionSettings]] = RevertSettings

    def run(self, ctx: ActionContext) -> ActionResult:
        settings = rendered_settings(RevertSettings, ctx)
        release = _field(ctx, settings, "release")
        environment = _field(ctx, settings, "environment")
        branch = strict("branch", settings.branch)
        # The usual trailers (after the last blank line), and the subject if one was given.
        given, trailers = commit_message(ctx, settings).rsplit("\n\n", 1)
        env, secrets = git_env(settings)
        base = Git(ctx.workdir, env, secrets, ctx.timeout_s)
        url = remote_url(settings.repo, ctx.workdir)
        with WorkingCopies.under(ctx.data_dir).checkout(url, branch, base) as git:
            found = promoted_by(git, release, environment)
            if found is None:
                raise TerminalError(
                    f"no commit on {branch} promoted {release} to {environment} "
                    "(none has both Conveyor-Release and Conveyor-Environment trailers)"
                )
            sha, subject = found
            if reverted(git, sha):
                return ActionResult(
                    True, f"revert: {sha[:12]} ({subject}) is already reverted", "unchanged"
                )
            parents = git("rev-list", "--parents", "-n", "1", sha).stdout.split()[1:]
            # A merge promotion is undone relative to the branch it was merged into.
            mainline = ["-m", "1"] if len(parents) > 1 else []
            undone = git("revert", "--no-commit", *mainline, sha, check=False)
            if undone.returncode != 0:
                names = conflicts(git)
                git("revert", "--abort", check=False)  # nothing was pushed; leave it clean
                if not names:
                    raise TerminalError(f"git revert {sha[:12]} failed: {undone.stderr.strip()}")
                raise TerminalError(
                    f"reverting {sha[:12]} conflicts in {', '.join(names)}; nothing was pushed"
                )
            if git("diff", "--cached", "--quiet", check=False).returncode == 0:
                git("revert", "--abort", check=False)
                return ActionResult(
                    True, f"revert: {branch} no longer has {sha[:12]}'s changes", "unchanged"
                )
            head = given if "message" in settings.model_fields_set else f'Revert "{subject}"'
            message = f"{head}\n\nThis reverts commit {sha}.\n\n{REVERT_OF}: {sha}\n{trailers}"
            git("commit", "--quiet", "--no-verify", "-m", message)
            tries = push(git, branch)  # a plain commit: rebasing it onto a racing push is fine
            new = git("rev-parse", "--short", "HEAD").stdout.strip()
        note = f" after {tries - 1} rebase(s)" if tries > 1 else ""
        return ActionResult(
            True, f"revert: {new} reverts {sha[:12]} ({subject}) on {branch}{note}", f"revert {new}"
        )
