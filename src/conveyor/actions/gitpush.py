"""Pushing a branch honestly: a race lost is fetched, rebased and tried again after a
jittered back-off until the task's timeout; anything else the remote says ends the push in
the remote's own words.

What a refused push says, as `git push --porcelain` and the server word it:
- `[rejected] (fetch first)` / `(non-fast-forward)`: someone pushed first. A race.
- `[remote rejected] (failed to update ref)` with `cannot lock ref ... is at X but expected
  Y`: someone pushed between the server's check and its update. Also a race.
- the same with `Unable to create '.../main.lock': File exists`: another push holds the
  ref, for milliseconds; a lock that outlives `STALE_LOCK` was left by a crashed git.
- `[remote rejected] (pre-receive hook declined)`, or any `hook declined`: the server's
  policy said no; its `remote:` lines say why. Trying again cannot help.
"""

from __future__ import annotations

import random
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from conveyor.clock import Deadline
from conveyor.errors import TerminalError, TransientError

if TYPE_CHECKING:
    from conveyor.actions.gitrepo import Git

MAX_PUSHES = 1000  # a bound on the loop; the task's timeout normally ends it long before
FIRST_BACKOFF_S = 0.02  # the first wait is 10-20 ms; each lost race doubles it...
MAX_BACKOFF_S = 0.5  # ...up to this
STALE_LOCK = timedelta(seconds=2)  # a server's push holds a ref lock for milliseconds
_LOCKED = re.compile(r"Unable to create '([^']*\.lock)': File exists")


def conflicts(git: Git) -> list[str]:
    """The files a failed merge, revert or rebase left unmerged."""
    return git("diff", "--name-only", "--diff-filter=U", check=False).stdout.splitlines()


@dataclass
class Pushed:
    """How a push went: races lost, and rebases that really moved the commit."""

    races: int = 0
    rebases: int = 0

    @property
    def note(self) -> str:
        """ " after 2 rebase(s)", " after 3 lost race(s), 2 rebase(s)", or nothing."""
        parts = [f"{self.races} lost race(s)"] if self.races > self.rebases else []
        parts += [f"{self.rebases} rebase(s)"] if self.rebases else []
        return f" after {', '.join(parts)}" if parts else ""


class Backoff:
    """Capped exponential waits with full jitter, so racing pushers spread out."""

    def __init__(self, deadline: Deadline) -> None:
        self.deadline, self.waits = deadline, 0

    def wait(self, cancelled: Callable[[], bool]) -> bool:
        """Sleep (on the deadline's clock) before the next try; False when the deadline
        leaves no time for one."""
        cap = min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2**self.waits)
        self.waits += 1
        pause = random.uniform(cap / 2, cap)
        if self.deadline.left() <= pause or cancelled():
            return False
        clock = self.deadline.clock
        clock.sleep_until(clock.now() + timedelta(seconds=pause), threading.Event())
        return True


def _refusal(said: str, branch: str) -> tuple[str, Exception | None]:
    """("race" | "locked" | "refused", the error to raise if it is neither race nor lock)."""
    statuses = [line.split("\t")[-1] for line in said.splitlines() if line.startswith("!")]
    remote = [
        line.rstrip()
        for line in said.splitlines()
        if line.startswith("remote:") and line[7:].strip()
    ]
    words = "\n".join(remote)
    reason = "; ".join(statuses)
    if any(s.startswith("[rejected]") for s in statuses):
        return "race", None
    if "hook declined" in reason:
        text = (
            f"the remote refused the push to {branch} ({reason.removeprefix('[remote rejected] ')})"
        )
        return "refused", TerminalError(f"{text}:\n{words}" if words else text)
    if "cannot lock ref" in words and "but expected" in words:
        return "race", None
    if _LOCKED.search(words):
        return "locked", None
    return "failed", TransientError(f"git push to {branch} failed: {said.strip()}")


def push(
    git: Git, branch: str, deadline: Deadline, cancelled: Callable[[], bool] = lambda: False
) -> Pushed:
    """Push HEAD to `branch`; when someone else pushed first, rebase onto theirs and push
    again, backing off, until `deadline`. Their commit is never overwritten (no force).
    Raises what the remote's answer means when it is not a race."""
    pushed = Pushed()
    clock = deadline.clock
    start = clock.now()
    backoff = Backoff(deadline)
    locked_since: datetime | None = None
    for _ in range(MAX_PUSHES):
        result = git("push", "--porcelain", "origin", f"HEAD:refs/heads/{branch}", check=False)
        if result.returncode == 0:
            return pushed
        said = result.stderr + result.stdout
        kind, error = _refusal(said, branch)
        if error is not None:
            raise error
        if kind == "locked":
            locked_since = clock.now() if locked_since is None else locked_since
            if clock.now() - locked_since >= STALE_LOCK:
                raise _stale(said, branch)
        else:
            locked_since = None
            pushed.races += 1
            _rebase(git, branch, pushed)
        if not backoff.wait(cancelled):
            break
    if cancelled():
        raise TerminalError("cancelled while racing for the branch; nothing was pushed")
    if locked_since is not None:
        raise _stale(said, branch)
    spent = (clock.now() - start).total_seconds()
    raise TransientError(
        f"push to {branch} lost the race {pushed.races} times in {spent:.1f}s; will retry"
    )


def _rebase(git: Git, branch: str, pushed: Pushed) -> None:
    """Put our commit on the remote's new head; counts a rebase only if HEAD moved."""
    git("fetch", "--quiet", "origin", branch)
    before = git("rev-parse", "HEAD").stdout.strip()
    rebased = git("rebase", f"refs/remotes/origin/{branch}", check=False)
    if rebased.returncode != 0:
        unmerged = conflicts(git)
        git("rebase", "--abort", check=False)
        raise TerminalError(
            f"conflict with changes pushed meanwhile in {', '.join(unmerged) or 'the branch'}"
        )
    if git("rev-parse", "HEAD").stdout.strip() != before:
        pushed.rebases += 1


def _stale(said: str, branch: str) -> TransientError:
    found = _LOCKED.search(said)
    lock = found.group(1) if found else f"refs/heads/{branch}.lock"
    return TransientError(
        f"the remote has a stale lock on {branch} ({lock} exists; a git process on the "
        f"server crashed or is stuck): remove it"
    )
