"""Runs tasks on a bounded set of worker threads; results are handed back to the engine's pass.

Only the engine's pass writes to the store: a task thread returns its result and sets
the wake event, so a finished task moves its promotion on within milliseconds. Workers
are started ahead of need, in the background: starting a thread costs about a
millisecond, which 30 environments deploying at once would otherwise wait for in turn.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass

from conveyor.actions import Action, ActionContext, ActionResult
from conveyor.errors import ConveyorError, TerminalError, TransientError


@dataclass(frozen=True)
class Finished:
    run_id: int
    result: ActionResult


@dataclass
class _Job:
    run_id: int
    action: Action
    ctx: ActionContext
    result: ActionResult | None = None


class TaskRunner:
    def __init__(self, max_workers: int = 64) -> None:
        self.wake = threading.Event()
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._inflight: dict[int, _Job] = {}
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self._max = max_workers
        self._closed = False
        self._spawned = threading.Event()
        threading.Thread(target=self._spawn, name="task-spawner", daemon=True).start()

    def _spawn(self) -> None:
        for i in range(self._max):
            with self._lock:  # started and listed together, so shutdown joins only started ones
                if self._closed:
                    return
                worker = threading.Thread(target=self._work, name=f"task-{i}", daemon=True)
                worker.start()
                self._workers.append(worker)
        self._spawned.set()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            job.result = _call(job.action, job.ctx)
            self.wake.set()

    def start(self, run_id: int, action: Action, ctx: ActionContext) -> None:
        with self._lock:
            if run_id in self._inflight or self._closed:
                return
            job = _Job(run_id, action, ctx)
            self._inflight[run_id] = job
        self._jobs.put(job)

    def wait_ready(self, timeout: float) -> bool:
        """Wait until every worker has started (a bench measures promotions, not start-up)."""
        return self._spawned.wait(timeout)

    def cancel(self, run_id: int) -> None:
        with self._lock:
            job = self._inflight.get(run_id)
        if job is not None:
            job.ctx.cancel.set()

    def collect(self) -> list[Finished]:
        """Every task that has finished since the last call."""
        with self._lock:
            done = [job for job in self._inflight.values() if job.result is not None]
            for job in done:
                del self._inflight[job.run_id]
        return [Finished(job.run_id, job.result) for job in done if job.result is not None]

    @property
    def inflight(self) -> int:
        with self._lock:
            return len(self._inflight)

    def shutdown(self) -> None:
        """Cancel what runs, let the workers finish their current task, and stop them."""
        with self._lock:
            self._closed = True
            for job in self._inflight.values():
                job.ctx.cancel.set()
            workers = list(self._workers)
        for _ in workers:
            self._jobs.put(None)
        for worker in workers:
            worker.join(timeout=10)


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
