"""Working copies shared safely: two processes on one data directory take turns, and a
batch group (`batch_key`, `batch_size`) lands whole, in one commit, or not at all."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from conveyor.actions.base import ActionResult
from conveyor.actions.gitcopies import WorkingCopies
from conveyor.actions.gitrepo import GitSettings, commit_and_push
from conveyor.clock import Deadline, ManualClock, SystemClock
from conveyor.errors import TerminalError, TransientError
from tests.actions.helpers import git_ctx, writer
from tests.gitrepos import bare_repo, git, log, show

ROOT = Path(__file__).resolve().parents[2]

# One process promoting `count` times; each commit adds its own file.
PROMOTER = """
import sys
from pathlib import Path
from conveyor.actions.base import ActionContext
from conveyor.actions.gitrepo import GitSettings, commit_and_push, inside

tmp, repo, name, count = Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
template = {"release": {"product": "shop", "version": "1"}, "environment": {"name": name}}
for n in range(count):
    def edit(root, n=n):
        inside(root, f"{name}/{n}.txt").parent.mkdir(exist_ok=True)
        inside(root, f"{name}/{n}.txt").write_text(f"{n}\\n")
        return [f"{name}/{n}.txt"]
    ctx = ActionContext(
        raw={}, template=template, workdir=tmp, timeout_s=60, data_dir=tmp / "data"
    )
    result = commit_and_push(ctx, GitSettings(repo=repo), edit, f"{name} {n}")
    assert result.ok and "committed" in result.output, result
"""


def test_two_processes_sharing_a_data_dir_take_turns(tmp_path: Path) -> None:
    bare = bare_repo(tmp_path, "ops", {"README.md": "x\n"})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    count = 12
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PROMOTER, str(tmp_path), f"file://{bare}", name, str(count)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("one", "two")
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
    for name in ("one", "two"):
        files = git(bare, "ls-tree", "-r", "--name-only", "main", f"{name}/").split()
        assert len(files) == count, files
    assert len(log(bare)) == 2 * count + 1


def group_member(
    tmp_path: Path, settings: GitSettings, image: str, results: dict[str, object], **more: object
) -> Callable[[], None]:
    """A `batch: true` task of the group `more` names, writing images/`image`."""

    def call() -> None:
        c = git_ctx(tmp_path, **more)
        try:
            results[image] = commit_and_push(
                c, settings, writer(f"images/{image}", f"{image}\n"), f"set image {image}"
            )
        except Exception as exc:  # to the test's assertions
            results[image] = exc

    return call


def staggered(calls: list[Callable[[], None]], delay_s: float = 0.05) -> None:
    """Start `calls` `delay_s` apart (the first gets the branch alone); wait for all."""
    threads = []
    for call in calls:
        threads.append(threading.Thread(target=call))
        threads[-1].start()
        time.sleep(delay_s)
    for t in threads:
        t.join(timeout=120)


def test_a_batch_group_lands_in_one_commit_whoever_arrives_first(tmp_path: Path) -> None:
    bare = bare_repo(tmp_path, "ops", {"README.md": "x\n"})
    settings = GitSettings(repo=f"file://{bare}", batch=True)
    for round_ in range(4):
        results: dict[str, object] = {}
        images = [f"{name}-{round_}" for name in ("web", "api", "worker")]
        key = f"promotion-7/deploy/{round_}"
        staggered(
            [
                group_member(tmp_path, settings, i, results, batch_key=key, batch_size=3)
                for i in images
            ]
        )
        assert all(isinstance(r, ActionResult) and r.ok for r in results.values()), results
        assert len(log(bare)) == 2 + round_  # exactly one new commit per group
        new = git(bare, "show", "--name-only", "--format=", "main").split()
        assert sorted(new) == sorted(f"images/{i}" for i in images)
        assert all("one commit for 3 promotions" in r.output for r in results.values())  # type: ignore[attr-defined]


def test_without_a_group_a_lone_batch_task_does_not_wait(tmp_path: Path) -> None:
    bare = bare_repo(tmp_path, "ops", {"README.md": "x\n"})
    settings = GitSettings(repo=f"file://{bare}", batch=True)
    results: dict[str, object] = {}
    began = time.monotonic()
    group_member(tmp_path, settings, "web", results)()
    group_member(tmp_path, settings, "api", results, batch_key="k", batch_size=1)()
    assert time.monotonic() - began < 20  # far from the 60 s timeout
    assert all(isinstance(r, ActionResult) and r.ok for r in results.values()), results
    assert len(log(bare)) == 3


def test_a_failing_or_cancelled_member_does_not_hold_up_its_group(tmp_path: Path) -> None:
    bare = bare_repo(tmp_path, "ops", {"README.md": "x\n"})
    settings = GitSettings(repo=f"file://{bare}", batch=True)
    results: dict[str, object] = {}
    group = {"batch_key": "g", "batch_size": 4}
    cancelled = git_ctx(tmp_path, **group)
    cancelled.cancel.set()

    def bad_edit() -> None:
        def edit(root: Path) -> list[str]:
            raise TerminalError("no kustomization file in 'nowhere'")

        try:
            commit_and_push(git_ctx(tmp_path, **group), settings, edit, "bad")
        except TerminalError as exc:
            results["bad"] = exc

    def cancelled_member() -> None:
        try:
            commit_and_push(cancelled, settings, writer("images/gone", "x\n"), "gone")
        except TerminalError as exc:
            results["gone"] = exc

    staggered(
        [
            group_member(tmp_path, settings, "web", results, **group),
            bad_edit,
            cancelled_member,
            group_member(tmp_path, settings, "api", results, **group),
        ],
        delay_s=0.03,
    )
    assert isinstance(results["bad"], TerminalError) and isinstance(results["gone"], TerminalError)
    assert all(isinstance(results[i], ActionResult) for i in ("web", "api")), results
    assert len(log(bare)) == 2
    assert (
        show(bare, "main", "images/web") == "web\n" and show(bare, "main", "images/api") == "api\n"
    )


def test_a_group_whose_members_never_all_come_commits_none_of_them(tmp_path: Path) -> None:
    bare = bare_repo(tmp_path, "ops", {"README.md": "x\n"})
    settings = GitSettings(repo=f"file://{bare}", batch=True)
    results: dict[str, object] = {}

    def member(image: str) -> Callable[[], None]:
        def call() -> None:
            c = git_ctx(tmp_path, batch_key="lost", batch_size=3, timeout_s=1.5)
            try:
                commit_and_push(c, settings, writer(f"images/{image}"), image)
            except TransientError as exc:
                results[image] = exc

        return call

    staggered([member("web"), member("api")])
    assert all(isinstance(results[i], TransientError) for i in ("web", "api")), results
    assert "2 of 3" in str(results["web"])
    assert log(bare) == ["start"]


def test_a_wait_for_the_working_copy_ends_at_the_deadline_on_the_engines_clock(
    tmp_path: Path,
) -> None:
    """The deadline is the engine's: a test moves a ManualClock past it instead of waiting."""
    copies = WorkingCopies.under(tmp_path / "data")
    path = copies.path("file:///ops.git", "main")
    clock = ManualClock()
    outcome: list[BaseException] = []

    def second() -> None:
        try:
            with copies.hold(path, Deadline.after(clock, 60)):
                pass
        except TransientError as exc:
            outcome.append(exc)

    with copies.hold(path, Deadline.after(SystemClock(), 60)):
        waiter = threading.Thread(target=second)
        waiter.start()
        waiter.join(0.3)
        assert waiter.is_alive()  # waiting its turn: 60 s of the clock are not over
        clock.advance(timedelta(seconds=61))
        waiter.join(10)
    assert not waiter.is_alive()
    assert len(outcome) == 1 and "stayed busy; gave up waiting" in str(outcome[0])
