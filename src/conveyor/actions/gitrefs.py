"""Small helpers the branch, tag and revert actions share: the branch's working copy, ref
names checked before git sees them, resolving a branch or SHA, one push attempt."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from conveyor.actions.base import ActionContext
from conveyor.actions.gitcopies import WorkingCopies
from conveyor.actions.gitrepo import Git, GitSettings, git_env, remote_url
from conveyor.errors import TerminalError, TransientError

# A ref name git would accept, checked before git sees it; no '-' start, so never an option.
_REF = re.compile(r"^(?!-)(?!.*\.\.)(?!.*//)(?!.*@\{)[A-Za-z0-9._/+@-]+(?<![./])(?<!\.lock)$")
_HEX = re.compile(r"^[0-9a-f]{7,64}$")
# Push refusals that mean "the remote moved under us", as `git push --porcelain` words them.
_RACED = ("(fetch first)", "(non-fast-forward)", "(already exists)", "(stale info)")


@contextmanager
def checkout(ctx: ActionContext, settings: GitSettings, branch: str) -> Iterator[Git]:
    """`branch` as the remote has it now, in its cached clone, locked for this holder."""
    copies = WorkingCopies.under(ctx.data_dir)
    copies.leave(ctx)  # these actions make their own commit: a batch group must not wait
    env, secrets = git_env(settings)
    base = Git(ctx.workdir, env, secrets, ctx.timeout_s)
    url = remote_url(settings.repo, ctx.workdir)
    with copies.checkout(url, branch, base, ctx) as git:
        yield git


def ref_value(value: str, *, templated: bool) -> str:
    """A branch, tag or SHA. At apply time (`templated`) a `${{ }}` is only known later,
    so only the '-' start is refused then; after rendering the whole name is checked."""
    if value.startswith("-"):
        raise ValueError(f"'{value}' cannot start with '-'")
    if templated and "${{" in value:
        return value
    if not _REF.match(value):
        raise ValueError(f"'{value}' is not a valid branch, tag or commit name")
    return value


def strict(field: str, value: str) -> str:
    """The run-time check of a rendered value: a rendered label may itself hold `${{`."""
    try:
        return ref_value(value, templated=False)
    except ValueError as exc:
        raise TerminalError(f"{field}: {exc}") from None


def resolve(git: Git, what: str) -> str:
    """The full commit id of a remote branch's head, else of a commit SHA (fetched if need be)."""
    head = git(
        "rev-parse", "--verify", "--quiet", f"refs/remotes/origin/{what}^{{commit}}", check=False
    )
    if head.returncode == 0:
        return head.stdout.strip()
    if _HEX.match(what):
        for attempt in range(2):
            found = git("rev-parse", "--verify", "--quiet", f"{what}^{{commit}}", check=False)
            if found.returncode == 0:
                return found.stdout.strip()
            if attempt == 0 and len(what) in (40, 64):
                # Reachable only from a ref the sync does not fetch (a tag, a pull request).
                git("fetch", "--quiet", "--no-tags", "origin", what, check=False)
    raise TerminalError(f"'{what}' is neither a branch of the repository nor a commit in it")


def is_ancestor(git: Git, older: str, newer: str) -> bool:
    result = git("merge-base", "--is-ancestor", older, newer, check=False)
    if result.returncode not in (0, 1):
        raise TransientError(f"git merge-base failed: {result.stderr.strip()}")
    return result.returncode == 0


def push_once(git: Git, refspec: str, *options: str) -> bool:
    """One push: True when it landed, False when the remote moved first (the caller decides)."""
    result = git("push", "--porcelain", *options, "origin", refspec, check=False)
    if result.returncode == 0:
        return True
    said = result.stderr + result.stdout
    if any(reason in said for reason in _RACED):
        return False
    raise TransientError(f"git push failed: {said.strip()}")
