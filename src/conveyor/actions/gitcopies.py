"""The git actions' working copies: one clone per repository and branch under the data
directory, fetched rather than re-cloned, and taken in turns.

Turns are kept at two levels. Among this process's threads, a clone is "busy" while one
holder syncs, edits, commits and pushes; the others wait on one condition, which also
lets a holder wait for the rest of its batch. Between processes sharing a data directory
(two engines, an engine and a CLI), an exclusive `flock` on `<clone>.lock` beside the
clone: git's own `index.lock` would otherwise make the second one fail.

Batches. A `batch: true` job announces itself on arrival; the holder of the clone makes
the edits of the same release's waiting batch jobs too, in one commit. A group
(`ActionContext.batch_key`, `batch_size`) is never split: its members are taken all
together, once all have arrived, and a holder from the group waits for them (up to its
timeout; then none of them is committed). A member cancelled while it waits, or one that
fails before it arrives (`leave`), counts as arrived, so it holds nobody up.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.actions.base import ActionContext, ActionResult
from conveyor.clock import Deadline
from conveyor.errors import TerminalError, TransientError

if TYPE_CHECKING:
    from conveyor.actions.gitrepo import Git, GitSettings

POLL_S = 0.05  # how often a waiter looks at its cancel flag and deadline
# A bound on every wait loop; deadlines end them long before. The waits are real (other
# threads and processes wake them); the deadline is on the engine's clock.
MAX_POLLS = 10**6


@dataclass(eq=False)
class Job:
    """One action's edit, waiting for the branch; a batch holder may do it for it."""

    ctx: ActionContext
    settings: GitSettings
    edit: Callable[[Path], list[str]]
    what: str
    result: ActionResult | None = None
    error: Exception | None = None
    taken: bool = False  # a holder has it: its outcome will come
    done: bool = False

    @property
    def release(self) -> str:
        r = self.ctx.template.get("release", {})
        return f"{r.get('product')}@{r.get('version')}"

    @property
    def group(self) -> str:
        """Its batch group's key, or "" when it batches with whoever waits."""
        batched = self.settings.batch and self.ctx.batch_size > 1
        return self.ctx.batch_key if batched else ""


@dataclass
class _Group:
    size: int
    arrived: list[Job] = field(default_factory=list)
    gone: int = 0  # members that will never arrive (they failed before)
    failed: bool = False  # gave up waiting; latecomers fail at once

    @property
    def complete(self) -> bool:
        return len(self.arrived) + self.gone >= self.size


class WorkingCopies:
    """The clones under one data directory, and whose turn it is at each."""

    _all: dict[Path, WorkingCopies] = {}
    _guard = threading.Lock()

    def __init__(self, root: Path) -> None:
        self.root = root
        self._changed = threading.Condition()
        self._busy: set[Path] = set()
        self._waiting: dict[Path, list[Job]] = {}
        self._groups: dict[str, _Group] = {}

    @classmethod
    def under(cls, data_dir: Path) -> WorkingCopies:
        root = (data_dir / "repos").resolve()
        with cls._guard:
            return cls._all.setdefault(root, WorkingCopies(root))

    def path(self, url: str, branch: str) -> Path:
        key = hashlib.sha256(f"{url}\n{branch}".encode()).hexdigest()[:20]
        return self.root / key

    @contextlib.contextmanager
    def hold(
        self, path: Path, deadline: Deadline, cancel: threading.Event | None = None
    ) -> Iterator[None]:
        """The clone at `path` for this holder alone: this process's threads, then others."""
        stop = cancel or threading.Event()
        with self._changed:
            self._wait_turn(path, None, deadline, stop)
        try:
            with self.flock(path, deadline, stop):
                yield
        finally:
            with self._changed:
                self._busy.discard(path)
                self._changed.notify_all()

    @contextlib.contextmanager
    def turn(self, path: Path, job: Job, deadline: Deadline) -> Iterator[list[Job]]:
        """Wait for the clone; yields the jobs this holder is to do (`job` first), or none
        when another holder did `job` (or it failed waiting). Take `flock` to do them."""
        with self._changed:
            if job.settings.batch:
                self._arrive(path, job)
            holder = self._wait_turn(path, job, deadline, job.ctx.cancel)
            jobs = self._gather(path, job, deadline) if holder else []
        try:
            yield jobs
        finally:
            with self._changed:
                for j in jobs:
                    if j.result is None and j.error is None:  # the holder was interrupted
                        j.error = TransientError("stopped before its change was pushed")
                    j.done = True
                if holder:
                    self._busy.discard(path)
                self._tidy()
                self._changed.notify_all()

    def leave(self, ctx: ActionContext) -> None:
        """A group member that will never arrive (it failed first): do not wait for it."""
        if not ctx.batch_key or ctx.batch_size <= 1:
            return
        with self._changed:
            group = self._groups.setdefault(ctx.batch_key, _Group(ctx.batch_size))
            group.gone += 1
            self._tidy()
            self._changed.notify_all()

    def open(self, path: Path, url: str, branch: str, git: Git) -> Git:
        """The clone, synced to the remote branch; call it in your turn."""
        here = git.at(path)
        if not (path / ".git").is_dir():
            git.at(path.parent)("clone", "--quiet", "--no-checkout", "--", url, str(path))
        sync(here, branch)
        return here

    @contextlib.contextmanager
    def checkout(self, url: str, branch: str, git: Git, ctx: ActionContext) -> Iterator[Git]:
        """The branch as the remote has it now, in a clone only this holder may touch."""
        path = self.path(url, branch)
        with self.hold(path, ctx.deadline(), ctx.cancel):
            yield self.open(path, url, branch, git)

    @contextlib.contextmanager
    def flock(self, path: Path, deadline: Deadline, cancel: threading.Event) -> Iterator[None]:
        """`<clone>.lock`, exclusively, after the turn: a process sharing the data directory
        waits (git's index.lock would fail it instead); given up at `deadline`."""
        # Private to the engine's user: a clone may hold what the repository does not show
        # everyone (the data directory and repos/ are made 0700; already there, left alone).
        path.parent.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        with open(f"{path}.lock", "a") as lock:
            for _ in range(MAX_POLLS):
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if cancel.is_set():
                        raise TerminalError("cancelled before its change was made") from None
                    if deadline.passed():
                        raise TransientError(
                            f"working copy {path} is locked by another process; gave up waiting"
                        ) from None
                    cancel.wait(0.01)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # What follows runs with `_changed` held.

    def _arrive(self, path: Path, job: Job) -> None:
        self._waiting.setdefault(path, []).append(job)
        if job.group:
            group = self._groups.setdefault(job.group, _Group(job.ctx.batch_size))
            group.arrived.append(job)
            if group.failed:
                self._fail([job], self._gave_up(group, job))
        self._changed.notify_all()

    def _wait_turn(
        self, path: Path, job: Job | None, deadline: Deadline, cancel: threading.Event
    ) -> bool:
        """True when the clone is ours (marked busy); False when a holder finished `job`."""
        for _ in range(MAX_POLLS):
            if job is not None and job.taken:
                if job.done:
                    return False
            elif path not in self._busy:
                self._busy.add(path)
                return True
            elif cancel.is_set() or deadline.passed():
                error: Exception = (
                    TerminalError("cancelled before its change was made")
                    if cancel.is_set()
                    else TransientError(f"the working copy {path} stayed busy; gave up waiting")
                )
                if job is None:
                    raise error
                self._fail([job], error)
                return False
            self._changed.wait(POLL_S)
        raise TransientError(f"the working copy {path} stayed busy; gave up waiting")

    def _gather(self, path: Path, job: Job, deadline: Deadline) -> list[Job]:
        """`job` and the waiting jobs it may do: its whole group (waited for) and, if it
        batches, the same release's other batch jobs whose group is whole."""
        group = self._groups.get(job.group) if job.group else None
        for _ in range(MAX_POLLS):
            if group is None or group.complete or job.done:
                break
            if job.ctx.cancel.is_set() or deadline.passed():
                error: Exception = TerminalError("cancelled before its change was made")
                if not job.ctx.cancel.is_set():
                    group.failed = True
                    error = self._gave_up(group, job)
                    self._fail(self._members(path, group), error)
                self._fail([job], error)
                return []
            self._changed.wait(POLL_S)
        if job.done:  # failed while it waited (its group gave up)
            return []
        waiting = self._waiting.get(path, [])
        mine = [
            j
            for j in waiting
            if j is job
            or (
                job.settings.batch
                and j.settings.batch
                and j.release == job.release
                and (not j.group or self._groups[j.group].complete)
            )
        ]
        self._waiting[path] = [j for j in waiting if j not in mine]
        jobs = mine if job in mine else [job, *mine]
        for j in jobs:
            j.taken = True
        return jobs

    def _members(self, path: Path, group: _Group) -> list[Job]:
        return [j for j in group.arrived if not j.taken and not j.done]

    def _gave_up(self, group: _Group, job: Job) -> TransientError:
        return TransientError(
            f"batch {job.group}: {len(group.arrived) + group.gone} of {group.size} tasks "
            f"arrived in {job.ctx.timeout_s:g}s; none of them was committed"
        )

    def _fail(self, jobs: list[Job], error: Exception) -> None:
        """End jobs nobody will do: out of the queue, with `error` as their outcome."""
        for j in jobs:
            for queue in self._waiting.values():
                if j in queue:
                    queue.remove(j)
            j.error = j.error or error
            j.taken = j.done = True
        self._changed.notify_all()

    def _tidy(self) -> None:
        """Forget groups all of whose members came and went."""
        for key, group in list(self._groups.items()):
            if group.complete and all(j.done for j in group.arrived):
                del self._groups[key]


def sync(git: Git, branch: str) -> None:
    """Make the working copy exactly the remote branch (drops anything left by a crash)."""
    git("fetch", "--quiet", "--prune", "origin")
    ref = f"refs/remotes/origin/{branch}"
    if git("rev-parse", "--verify", "--quiet", ref, check=False).returncode != 0:
        raise TerminalError(f"branch '{branch}' does not exist in the repository")
    git("checkout", "--quiet", "--force", "-B", branch, ref)
    git("clean", "--quiet", "-fdx")
