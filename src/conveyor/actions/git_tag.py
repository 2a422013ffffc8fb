"""`git.tag`: tag-based promotion. Put an annotated tag (say `v1.2.3-prod`) on a commit and
push that one tag.

The remote is the truth, asked with `ls-remote` each time: the cached clone may hold a
stale copy of the tag (fetch never overwrites a tag it already has). A tag already at the
commit is success with no push; a tag at another commit is refused unless `force`, and
then only that tag is moved, with a lease so a tag someone moved meanwhile is not clobbered.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator

from conveyor.actions.base import ActionContext, ActionResult, ActionSettings, rendered_settings
from conveyor.actions.gitrefs import checkout, push_once, ref_value, resolve, strict
from conveyor.actions.gitrepo import PUSH_TRIES, Git, GitSettings, commit_message
from conveyor.errors import TerminalError, TransientError


class TagSettings(GitSettings):
    """`branch` is where the commit is looked for; `ref` defaults to that branch's head."""

    tag: str = Field(min_length=1, description="The tag's name, e.g. v${{ release.version }}-prod")
    ref: str | None = Field(None, description="A commit SHA or a branch; default: `branch`")
    force: bool = Field(False, description="Move the tag if it points at another commit")

    @field_validator("tag", "ref")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else ref_value(value, templated=True)


def remote_tag(git: Git, tag: str) -> tuple[str, str] | None:
    """(the tag's object, the commit it points at) on the remote, or None if it has none."""
    name = f"refs/tags/{tag}"
    out = git("ls-remote", "origin", name, f"{name}^{{}}").stdout
    # ls-remote matches patterns by their tail: keep the exact names only.
    refs = {ref: sha for sha, _, ref in (line.partition("\t") for line in out.splitlines())}
    obj = refs.get(name)
    if obj is None:
        return None
    return obj, refs.get(f"{name}^{{}}", obj)  # a lightweight tag is its own commit


class TagAction:
    name: ClassVar[str] = "git.tag"
    Settings: ClassVar[type[ActionSettings]] = TagSettings

    def run(self, ctx: ActionContext) -> ActionResult:
        settings = rendered_settings(TagSettings, ctx)
        tag, branch = strict("tag", settings.tag), strict("branch", settings.branch)
        ref = strict("ref", settings.ref) if settings.ref is not None else branch
        message = commit_message(ctx, settings)
        with checkout(ctx, settings, branch) as git:
            # git's own rules are the last word on what a tag may be called.
            if git("check-ref-format", f"refs/tags/{tag}", check=False).returncode != 0:
                raise TerminalError(f"tag: '{tag}' is not a valid tag name")
            sha = resolve(git, ref)
            for _ in range(PUSH_TRIES):
                there = remote_tag(git, tag)
                if there is not None and there[1] == sha:
                    return ActionResult(
                        True, f"tag: {tag} already points at {sha[:12]}", "unchanged"
                    )
                if there is not None and not settings.force:
                    raise TerminalError(
                        f"tag {tag} already points at {there[1][:12]}, not {sha[:12]}; "
                        "set force: true to move it"
                    )
                # --force here only replaces a stale local copy; the remote decides below.
                git("tag", "--force", "--annotate", "--message", message, "--", tag, sha)
                lease = [f"--force-with-lease=refs/tags/{tag}:{there[0]}"] if there else []
                if push_once(git, f"refs/tags/{tag}:refs/tags/{tag}", *lease):
                    moved = f" (moved from {there[1][:12]})" if there else ""
                    return ActionResult(
                        True, f"tag: pushed {tag} at {sha[:12]}{moved}", f"tag {tag} {sha[:12]}"
                    )
                # Someone created or moved the tag first: look again at what they left.
        raise TransientError(f"tag {tag} kept changing on the remote; will retry")
