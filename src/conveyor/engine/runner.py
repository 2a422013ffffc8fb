"""Runs tasks in a bounded thread pool; results are handed back to the engine's pass.

Only the engine's pass writes to the store: a task thread returns its result and sets
the wake event, so a finished task moves its promotion on within milliseconds.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from conveyor.actions import Action, ActionContext, ActionResult
from conveyor.errors import ConveyorError, TerminalError, TransientError


@dataclass(frozen=True)
class Finished:
    run_id: int
    result: ActionResult


class TaskRunner:
    def __init__(self, max_workers: int = 64) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="task")
        self._futures: dict[int, tuple[Future[ActionResult], threading.Event]] = {}
        self._lock = threading.Lock()
        self.wake = threading.Event()

    def start(self, run_id: int, action: Action, ctx: ActionContext) -> None:
        with self._lock:
            if run_id in self._futures:
                return
            future = self._pool.submit(_call, action, ctx)
            self._futures[run_id] = (future, ctx.cancel)
        future.add_done_callback(lambda _f: self.wake.set())

    def is_running(self, run_id: int) -> bool:
        with self._lock:
            return run_id in self._futures

    def cancel(self, run_id: int) -> None:
        with self._lock:
            entry = self._futures.get(run_id)
        if entry is not None:
            entry[1].set()

    def collect(self) -> list[Finished]:
        """Every task that has finished since the last call."""
        with self._lock:
            done = [rid for rid, (f, _) in self._futures.items() if f.done()]
            futures = [self._futures.pop(rid)[0] for rid in done]
        return [Finished(rid, f.result()) for rid, f in zip(done, futures, strict=True)]

    @property
    def inflight(self) -> int:
        with self._lock:
            return len(self._futures)

    def shutdown(self) -> None:
        with self._lock:
            for _, cancel in self._futures.values():
                cancel.set()
        self._pool.shutdown(wait=True, cancel_futures=True)


def _call(action: Action, ctx: ActionContext) -> ActionResult:
    """Never raises: every outcome, expected or not, becomes a result the pass can store."""
    try:
        return action.run(ctx)
    except TerminalError as exc:
        return ActionResult(False, "", str(exc), retryable=False)
    except TransientError as exc:
        return ActionResult(False, "", str(exc), retryable=True)
    except ConveyorError as exc:
        return ActionResult(False, "", str(exc), retryable=False)
    except Exception as exc:  # a plugin's bug must not kill the engine
        return ActionResult(False, "", f"{type(exc).__name__}: {exc}", retryable=False)
