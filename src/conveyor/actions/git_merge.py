"""`git.merge`: branch-based promotion. Merge a source (a branch or a commit) into the
environment's branch: a fast-forward when possible, a merge commit with Conveyor's trailers
otherwise, nothing when the branch already holds the source.

A rejected push is not rebased (that would flatten a merge commit and re-create the
source's commits under new ids, so the branch would no longer "contain" the source):
the working copy is synced to the new remote head and the merge is done again.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator

from conveyor.actions.base import ActionContext, ActionResult, ActionSettings, rendered_settings
from conveyor.actions.gitcopies import sync
from conveyor.actions.gitpush import conflicts
from conveyor.actions.gitrefs import checkout, is_ancestor, push_once, ref_value, resolve, strict
from conveyor.actions.gitrepo import PUSH_TRIES, Git, GitSettings, commit_message
from conveyor.errors import TerminalError, TransientError


class MergeSettings(GitSettings):
    """`branch` is the environment's branch (the target); `source` is what it receives."""

    source: str = Field(min_length=1, description="A branch of the repository or a commit SHA")
    fastForward: bool = Field(
        True,
        description="Fast-forward when possible; false always makes a merge commit, whose "
        "trailers let `conveyor rollback --revert` find and undo the promotion",
    )

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        return ref_value(value, templated=True)


class MergeAction:
    name: ClassVar[str] = "git.merge"
    Settings: ClassVar[type[ActionSettings]] = MergeSettings

    def run(self, ctx: ActionContext) -> ActionResult:
        settings = rendered_settings(MergeSettings, ctx)
        source, branch = strict("source", settings.source), strict("branch", settings.branch)
        message = commit_message(ctx, settings)
        with checkout(ctx, settings, branch) as git:
            sha = resolve(git, source)  # pinned once: every retry merges the same commit
            for attempt in range(1, PUSH_TRIES + 1):
                if attempt > 1:
                    sync(git, branch)  # drop our merge, start over from their new head
                how = self._merge(git, sha, message, source, branch, settings.fastForward)
                if how is None:
                    head = git("rev-parse", "--short", "HEAD").stdout.strip()
                    return ActionResult(
                        True, f"merge: {branch} ({head}) already contains {source}", "unchanged"
                    )
                if push_once(git, f"HEAD:refs/heads/{branch}"):
                    head = git("rev-parse", "--short", "HEAD").stdout.strip()
                    note = f" after {attempt - 1} retry(s)" if attempt > 1 else ""
                    return ActionResult(
                        True,
                        f"merge: {how} {branch} to {head} with {source}{note}",
                        f"{how} {head}",
                    )
        raise TransientError(f"push to {branch} lost the race {PUSH_TRIES} times; will retry")

    @staticmethod
    def _merge(
        git: Git, sha: str, message: str, source: str, branch: str, fast_forward: bool
    ) -> str | None:
        """Merge into the checked-out branch; None when there is nothing to merge."""
        if is_ancestor(git, sha, "HEAD"):
            return None  # a re-run, or someone merged it already: nothing to do
        if fast_forward and is_ancestor(git, "HEAD", sha):
            git("merge", "--quiet", "--ff-only", sha)
            return "fast-forwarded"
        merged = git("merge", "--quiet", "--no-ff", "--no-edit", "-m", message, sha, check=False)
        if merged.returncode == 0:
            return "merged into"
        unmerged = conflicts(git)
        git("merge", "--abort", check=False)  # leave the cached clone clean; nothing was pushed
        if unmerged:
            raise TerminalError(
                f"merging {source} into {branch} conflicts in {', '.join(unmerged)}; "
                "nothing was pushed"
            )
        said = merged.stderr.strip() or merged.stdout.strip()
        if "unrelated histories" in said:
            raise TerminalError(f"{source} and {branch} share no history; nothing was pushed")
        raise TransientError(f"git merge failed: {said}")
