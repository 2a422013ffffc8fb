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
from conveyor.actions.gitpush import conflicts, push
from conveyor.actions.gitrefs import checkout, strict
from conveyor.actions.gitrepo import PATH_TRAILER, Git, GitSettings, commit_message
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


def promotions_of(
    git: Git, release: str, environment: str
) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """Every commit that promoted `release` to `environment`, newest first (reverts
    excluded: they carry the same trailers, and reverting a revert is not a rollback)."""
    want = {("Conveyor-Release", release), ("Conveyor-Environment", environment)}
    grep = [f"--grep=Conveyor-Release: {release}", f"--grep=Conveyor-Environment: {environment}"]
    return [
        (sha, subject, trailers)
        for sha, subject, trailers in _commits(git, "--all-match", *grep, "HEAD")
        if want <= set(trailers) and not any(key == REVERT_OF for key, _ in trailers)
    ]


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
        with checkout(ctx, settings, branch) as git:
            found = promotions_of(git, release, environment)
            if not found:
                raise TerminalError(
                    f"no commit on {branch} promoted {release} to {environment} "
                    "(none has both Conveyor-Release and Conveyor-Environment trailers)"
                )
            todo = [c for c in found if not reverted(git, c[0])]
            made = []
            for sha, subject, commit_trailers in todo:  # newest first
                if _revert_one(git, sha, environment, commit_trailers):
                    head = (
                        given if "message" in settings.model_fields_set else f'Revert "{subject}"'
                    )
                    message = (
                        f"{head}\n\nThis reverts commit {sha}.\n\n{REVERT_OF}: {sha}\n{trailers}"
                    )
                    git("commit", "--quiet", "--no-verify", "-m", message)
                    made.append(sha[:12])
            if not made:
                return ActionResult(
                    True,
                    f"revert: {branch} has no change left of {release} in {environment}",
                    "unchanged",
                )
            if ctx.cancel.is_set():
                raise TerminalError("cancelled before pushing; nothing was pushed")
            # Plain commits: rebasing them onto a racing push is fine.
            pushed = push(git, branch, ctx.deadline(), ctx.cancel.is_set)
            new = git("rev-parse", "--short", "HEAD").stdout.strip()
        return ActionResult(
            True,
            f"revert: {new} reverts {', '.join(made)} on {branch}{pushed.note}",
            f"revert {new}",
        )


def _revert_one(git: Git, sha: str, environment: str, trailers: list[tuple[str, str]]) -> bool:
    """Stage the revert of `sha`, limited to `environment`'s paths when the commit says which
    are whose (a batch commit also holds other environments'). False if nothing is left."""
    parents = git("rev-list", "--parents", "-n", "1", sha).stdout.split()[1:]
    # A merge promotion is undone relative to the branch it was merged into.
    mainline = ["-m", "1"] if len(parents) > 1 else []
    undone = git("revert", "--no-commit", *mainline, sha, check=False)
    if undone.returncode != 0:
        names = conflicts(git)
        git("revert", "--abort", check=False)  # nothing was pushed; leave it clean
        if not names:
            raise TerminalError(f"git revert {sha[:12]} failed: {undone.stderr.strip()}")
        raise TerminalError(f"reverting {sha[:12]} conflicts in {', '.join(names)}; nothing pushed")
    owned = [v.partition(" ") for k, v in trailers if k == PATH_TRAILER]
    if owned:
        mine = {path for env, _, path in owned if env == environment}
        staged = git("diff", "--cached", "--name-only").stdout.split()
        others = [p for p in staged if p not in mine]
        if others:
            git("restore", "--staged", "--worktree", "--source=HEAD", "--", *others)
    if git("diff", "--cached", "--quiet", check=False).returncode == 0:
        git("revert", "--quit", check=False)
        return False
    return True
