"""The task runner on its own, with real actions on real threads: it grows past its warm
workers when tasks wait, and a plugin that raises, returns garbage or hangs fails its task
without holding the engine."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from conveyor.actions import ActionContext, ActionResult, ActionSettings
from conveyor.engine.runner import Finished, TaskRunner
from conveyor.errors import TransientError


def context(timeout_s: float = 60.0) -> ActionContext:
    return ActionContext(raw={}, template={}, workdir=Path("."), timeout_s=timeout_s)


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    for _ in range(int(timeout / 0.01) + 1):
        if check() or time.monotonic() > end:
            break
        time.sleep(0.01)
    return check()


def collect(runner: TaskRunner, count: int, timeout: float = 10.0) -> dict[int, ActionResult]:
    """What `count` tasks returned, waiting up to `timeout` seconds for them."""
    got: dict[int, ActionResult] = {}

    def more() -> bool:
        got.update({f.run_id: f.result for f in runner.collect()})
        return len(got) >= count

    wait_for(more, timeout)
    return got


class Blocked:
    """Waits on a shared event, as a task waits on a process or a socket."""

    name: ClassVar[str] = "test.blocked"
    Settings: ClassVar[type[ActionSettings]] = ActionSettings

    def __init__(self, release: threading.Event) -> None:
        self.release = release
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0

    def run(self, ctx: ActionContext) -> ActionResult:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        released = self.release.wait(30)
        with self.lock:
            self.running -= 1
        return ActionResult(released, summary="released" if released else "never released")


class Returns:
    """Returns whatever it was given, ActionResult or not (a plugin's bug)."""

    name: ClassVar[str] = "test.garbage"
    Settings: ClassVar[type[ActionSettings]] = ActionSettings

    def __init__(self, value: Any) -> None:
        self.value = value

    def run(self, ctx: ActionContext) -> Any:
        return self.value


class Raises:
    name: ClassVar[str] = "test.raises"
    Settings: ClassVar[type[ActionSettings]] = ActionSettings

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def run(self, ctx: ActionContext) -> ActionResult:
        raise self.exc


class Hangs:
    """Ignores its timeout and its cancel flag until the test lets it go."""

    name: ClassVar[str] = "test.hangs"
    Settings: ClassVar[type[ActionSettings]] = ActionSettings

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.let_go = threading.Event()
        self.returned = threading.Event()

    def run(self, ctx: ActionContext) -> ActionResult:
        self.entered.set()
        self.let_go.wait(30)
        self.returned.set()
        return ActionResult(True, summary="late")


class Cancellable:
    """Waits until cancelled, as the run action does with a long command."""

    name: ClassVar[str] = "test.cancellable"
    Settings: ClassVar[type[ActionSettings]] = ActionSettings

    def __init__(self) -> None:
        self.calls = 0
        self.stopped = threading.Event()

    def run(self, ctx: ActionContext) -> ActionResult:
        self.calls += 1
        cancelled = ctx.cancel.wait(30)
        self.stopped.set()
        return ActionResult(False, summary="cancelled" if cancelled else "not cancelled")


class Quick:
    name: ClassVar[str] = "test.quick"
    Settings: ClassVar[type[ActionSettings]] = ActionSettings

    def run(self, ctx: ActionContext) -> ActionResult:
        return ActionResult(True, summary="done")


def test_tasks_that_wait_all_run_at_once_past_the_warm_workers() -> None:
    runner = TaskRunner()  # as the engine makes it
    assert runner.wait_ready(10)
    release = threading.Event()
    action = Blocked(release)
    for run_id in range(200):
        runner.start(run_id, action, context())

    # A fixed pool of 64 threads ran 64 and queued the rest behind them.
    assert wait_for(lambda: action.running == 200), f"only {action.running} running at once"
    assert runner.threads >= 200 and runner.inflight == 200
    release.set()
    results = collect(runner, 200)
    assert len(results) == 200 and all(r.ok for r in results.values())
    assert runner.inflight == 0
    assert runner.shutdown()


def test_workers_beyond_the_warm_ones_exit_once_idle() -> None:
    runner = TaskRunner(4, idle_s=0.2)
    assert runner.wait_ready(10)
    release = threading.Event()
    action = Blocked(release)
    for run_id in range(20):
        runner.start(run_id, action, context())
    assert wait_for(lambda: action.running == 20)
    assert runner.threads == 20
    release.set()
    assert len(collect(runner, 20)) == 20

    assert wait_for(lambda: runner.threads == 4), f"{runner.threads} threads left"
    runner.start(99, action, context())  # the warm ones still serve
    assert collect(runner, 1)[99].ok
    assert runner.threads == 4
    assert runner.shutdown()


def test_an_action_that_returns_garbage_fails_without_retry_naming_the_action() -> None:
    runner = TaskRunner(2)
    runner.start(1, Returns(None), context())
    runner.start(2, Returns({"ok": True}), context())

    results = collect(runner, 2)

    assert results[1] == ActionResult(
        False, "", "action test.garbage returned NoneType, not an ActionResult", retryable=False
    )
    assert results[2].summary == "action test.garbage returned dict, not an ActionResult"
    assert not results[2].ok and not results[2].retryable
    assert runner.shutdown()


def test_an_action_that_raises_fails_naming_the_action() -> None:
    runner = TaskRunner(2)
    runner.start(1, Raises(ValueError("boom")), context())
    runner.start(2, Raises(TransientError("registry busy")), context())
    runner.start(3, Raises(SystemExit(3)), context())  # must not end the worker silently

    results = collect(runner, 3)

    assert results[1] == ActionResult(
        False, "", "action test.raises raised ValueError: boom", retryable=False
    )
    assert results[2] == ActionResult(False, "", "registry busy", retryable=True)
    assert results[3].summary == "action test.raises raised SystemExit: 3"
    assert runner.shutdown()


def test_a_hung_action_is_given_up_on_after_its_timeout_while_others_go_on() -> None:
    runner = TaskRunner(2, grace_s=1.0)
    hangs = Hangs()
    ctx = context(timeout_s=0.2)
    started = time.monotonic()
    runner.start(7, hangs, ctx)
    assert hangs.entered.wait(5)

    runner.start(8, Quick(), context())  # others go on meanwhile
    assert collect(runner, 1, timeout=0.9) == {8: ActionResult(True, summary="done")}

    results = collect(runner, 1, timeout=5)
    took = time.monotonic() - started
    assert results == {
        7: ActionResult(False, "", "action test.hangs did not finish within 0.2s", retryable=True)
    }
    assert 1.1 <= took < 3, f"given up on after {took:.2f}s"
    assert ctx.cancel.is_set()  # told to stop, in case it looks
    assert runner.inflight == 0  # the hung thread is not a task any more

    runner.start(7, Quick(), context())  # the run id is free for its retry
    assert collect(runner, 1) == {7: ActionResult(True, summary="done")}
    hangs.let_go.set()
    assert hangs.returned.wait(5)
    time.sleep(0.05)
    assert runner.collect() == []  # what it returned late is dropped
    assert runner.shutdown()


def test_cancel_stops_a_running_task_and_a_queued_one_never_runs() -> None:
    runner = TaskRunner(1, cap=1)
    running, queued = Cancellable(), Cancellable()
    runner.start(1, running, context())
    assert wait_for(lambda: running.calls == 1)
    runner.start(2, queued, context())  # at the cap: waits for the one worker

    runner.cancel(2)
    assert runner.collect() == [Finished(2, ActionResult(False, "", "cancelled", retryable=False))]
    runner.cancel(1)
    assert collect(runner, 1) == {1: ActionResult(False, summary="cancelled")}
    assert queued.calls == 0 and runner.inflight == 0
    assert runner.shutdown()


def test_shutdown_returns_promptly_and_leaves_a_hung_task_behind() -> None:
    runner = TaskRunner(4)
    hangs, cancellable = Hangs(), Cancellable()
    runner.start(1, hangs, context())
    runner.start(2, cancellable, context())
    assert hangs.entered.wait(5) and wait_for(lambda: cancellable.calls == 1)

    started = time.monotonic()
    stopped = runner.shutdown()  # as the engine's close() does
    took = time.monotonic() - started

    # The cancelled task stops at once; the hung one is waited for 3 s, not 10 s per thread.
    assert not stopped and took < 4, f"shutdown took {took:.2f}s"
    assert cancellable.stopped.is_set()
    runner.start(3, Quick(), context())  # refused once shut down
    assert runner.inflight == 2
    hangs.let_go.set()
    assert hangs.returned.wait(5)
