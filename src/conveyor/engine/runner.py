"""Runs tasks on an elastic set of worker threads; results are handed back to the engine's pass.

Only the engine's pass writes to the store: a task thread returns its result and sets
the wake event, so a finished task moves its promotion on within milliseconds.

Elastic, because a task mostly waits on a process or a socket, not on the CPU: with a
fixed pool of 64 threads, the 65th environment of a fan-out waited a whole task's time
for the first to finish. A few workers are kept warm, started ahead of need in the
background (starting a thread costs about a millisecond, which 30 environments deploying
at once would otherwise wait for in turn); beyond them a worker is started whenever a task
is queued and none is idle, up to a high cap, and those extra workers exit after a while
without work.

A watchdog, because a plugin's bug must not hold a promotion forever: an action is trusted
to respect its timeout and cancel flag, and one thread (not one per task) gives up on a
task still running `grace_s` past its timeout. It sets the task's cancel flag, reports a
retryable failure and forgets the task; the hung thread is abandoned, and whatever it
returns later is dropped.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass

from conveyor.actions import Action, ActionContext, ActionResult
from conveyor.errors import ConveyorError, TerminalError, TransientError

WARM = 64  # workers kept started: a fan-out of this many starts without creating threads
CAP = 1024  # threads at most (busy, idle or hung); beyond it tasks wait their turn
IDLE_S = 60.0  # a worker beyond the warm ones exits after this long without work
GRACE_S = 5.0  # past its timeout, a task gets this long to stop (the run action may
# take 4 s to stop a process that ignores SIGTERM) before the watchdog gives up on it
SHUTDOWN_S = 3.0  # how long shutdown waits for cancelled tasks to stop
WATCH_MAX_S = 60.0  # the watchdog's longest sleep, so its loop is bounded in time too


@dataclass(frozen=True)
class Finished:
    run_id: int
    result: ActionResult


@dataclass(eq=False)
class _Job:
    run_id: int
    action: Action
    ctx: ActionContext
    result: ActionResult | None = None  # set once: by the worker, the watchdog or a cancel
    deadline: float | None = None  # time.monotonic() past which it is given up; None: queued


class TaskRunner:
    """The engine's task threads.

    - `max_workers`: the workers kept warm (started at once, never exiting while idle).
      The name is kept for callers; it is no longer a limit on tasks running at once.
    - `cap`: the most threads at once, warm, extra and hung ones together.
    - `idle_s`: how long a worker beyond the warm ones waits for work before exiting.
    - `grace_s`: how long past `ctx.timeout_s` a task may run before it is given up on.
    """

    def __init__(
        self,
        max_workers: int = WARM,
        *,
        cap: int = CAP,
        idle_s: float = IDLE_S,
        grace_s: float = GRACE_S,
    ) -> None:
        self.wake = threading.Event()
        self._lock = threading.Lock()
        self._queued = threading.Condition(self._lock)  # a job is queued, or shutdown
        self._sooner = threading.Condition(self._lock)  # a sooner deadline, or shutdown
        self._pending: deque[_Job] = deque()
        self._inflight: dict[int, _Job] = {}
        self._deadlines: list[tuple[float, int, _Job]] = []  # a heap of running jobs
        self._seq = itertools.count()  # breaks ties in the heap (jobs do not compare)
        self._live: set[threading.Thread] = set()
        self._idle = 0  # workers waiting for a job
        self._names = itertools.count()
        self._cap = max(1, cap)
        self._warm = max(0, min(max_workers, self._cap))
        self._idle_s = idle_s
        self._grace_s = grace_s
        self._closed = False
        self._spawned = threading.Event()
        threading.Thread(target=self._prestart, name="task-spawner", daemon=True).start()
        threading.Thread(target=self._watch, name="task-watchdog", daemon=True).start()

    # --- the engine's side -----------------------------------------------------------

    def start(self, run_id: int, action: Action, ctx: ActionContext) -> None:
        with self._lock:
            if run_id in self._inflight or self._closed:
                return
            job = _Job(run_id, action, ctx)
            self._inflight[run_id] = job
            self._pending.append(job)
            # A notified worker counts as idle until it wakes, as its job counts as pending.
            if self._idle >= len(self._pending):
                self._queued.notify()
            else:
                self._add_worker(self._cap)  # at the cap, the job waits for a free worker

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the warm workers have started (a bench measures promotions, not
        start-up)."""
        return self._spawned.wait(timeout)

    def cancel(self, run_id: int) -> None:
        """Set the task's cancel flag; a task still queued finishes at once, never run."""
        with self._lock:
            job = self._inflight.get(run_id)
            if job is None:
                return
            job.ctx.cancel.set()
            if job.deadline is None and job.result is None:
                self._pending.remove(job)
                job.result = ActionResult(False, "", "cancelled", retryable=False)
                self.wake.set()

    def collect(self) -> list[Finished]:
        """Every task that has finished (or been given up on) since the last call."""
        with self._lock:
            done = [
                Finished(job.run_id, job.result)
                for job in self._inflight.values()
                if job.result is not None
            ]
            for finished in done:
                del self._inflight[finished.run_id]
        return done

    def promotions_running(self, environment: str) -> set[int]:
        """The promotions with a task still running in `environment` in this process,
        including one cancelled and still ending (its row says cancelled already)."""
        with self._lock:
            return {
                job.ctx.promotion_id
                for job in self._inflight.values()
                if job.ctx.promotion_id is not None
                and job.ctx.template.get("environment", {}).get("name") == environment
            }

    @property
    def inflight(self) -> int:
        """Tasks started and not yet collected (a hung task no longer, once collected)."""
        with self._lock:
            return len(self._inflight)

    @property
    def threads(self) -> int:
        """Worker threads alive now, hung ones included."""
        with self._lock:
            return len(self._live)

    def shutdown(self, timeout: float = SHUTDOWN_S) -> bool:
        """Cancel what runs, drop what is queued, and wait up to `timeout` seconds in all
        for the workers to stop. True if they all did; a hung one is left behind."""
        with self._lock:
            self._closed = True
            for job in self._pending:
                job.result = ActionResult(False, "", "cancelled", retryable=False)
            self._pending.clear()
            for job in self._inflight.values():
                job.ctx.cancel.set()
            self._queued.notify_all()
            self._sooner.notify_all()
            workers = [w for w in self._live if w is not threading.current_thread()]
        end = time.monotonic() + timeout
        for worker in workers:
            worker.join(timeout=max(0.0, end - time.monotonic()))
        return not any(worker.is_alive() for worker in workers)

    # --- workers ---------------------------------------------------------------------

    def _prestart(self) -> None:
        for _ in range(self._warm):
            with self._lock:
                if not self._add_worker(self._warm):
                    break
        self._spawned.set()

    def _add_worker(self, limit: int) -> bool:
        """Start a worker if fewer than `limit` are alive. Called with the lock held:
        started and listed together, so shutdown joins only started ones."""
        if self._closed or len(self._live) >= limit:
            return False
        worker = threading.Thread(target=self._work, name=f"task-{next(self._names)}", daemon=True)
        try:
            worker.start()
        except RuntimeError:  # the system's thread limit: the job waits for a free worker
            return False
        self._live.add(worker)
        return True

    def _work(self) -> None:
        # Ends at shutdown, or after idle_s without work for a worker beyond the warm ones.
        while (job := self._next_job()) is not None:
            result = _call(job.action, job.ctx)
            with self._lock:
                if job.result is not None:  # given up on meanwhile: the result is dropped
                    continue
                job.result = result
            self.wake.set()

    def _next_job(self) -> _Job | None:
        with self._lock:
            # Each wait ends with a job queued, at shutdown, or after idle_s.
            while not self._pending and not self._closed:
                self._idle += 1
                notified = self._queued.wait(self._idle_s)
                self._idle -= 1
                if not notified and not self._pending and len(self._live) > self._warm:
                    break
            if self._closed or not self._pending:
                self._live.discard(threading.current_thread())
                return None
            job = self._pending.popleft()
            job.deadline = time.monotonic() + job.ctx.timeout_s + self._grace_s
            self._watch_job(job, job.deadline)
            return job

    # --- the watchdog ----------------------------------------------------------------

    def _watch_job(self, job: _Job, deadline: float) -> None:
        """Called with the lock held."""
        if len(self._deadlines) > 2 * len(self._inflight) + 64:
            # Finished jobs stay in the heap until their deadline; drop them now and then.
            self._deadlines = [d for d in self._deadlines if d[2].result is None]
            heapq.heapify(self._deadlines)
        heapq.heappush(self._deadlines, (deadline, next(self._seq), job))
        if self._deadlines[0][2] is job:
            self._sooner.notify()

    def _watch(self) -> None:
        with self._lock:
            # Each turn ends at the soonest deadline, when a sooner one comes, at shutdown,
            # or after WATCH_MAX_S; the inner loop ends with the heap.
            while not self._closed:
                now = time.monotonic()
                gave_up = False
                while self._deadlines and self._deadlines[0][0] <= now:
                    _, _, job = heapq.heappop(self._deadlines)
                    if job.result is None:
                        job.ctx.cancel.set()
                        job.result = ActionResult(
                            False,
                            "",
                            f"action {action_name(job.action)} did not finish "
                            f"within {job.ctx.timeout_s:g}s",
                            retryable=True,
                        )
                        gave_up = True
                if gave_up:
                    self.wake.set()
                soonest = self._deadlines[0][0] - now if self._deadlines else WATCH_MAX_S
                self._sooner.wait(min(soonest, WATCH_MAX_S))


def action_name(action: Action) -> str:
    """The name users write in `uses:`, or the class's for an object that has none."""
    name = getattr(action, "name", None)
    return name if isinstance(name, str) else type(action).__name__


def _call(action: Action, ctx: ActionContext) -> ActionResult:
    """Never raises: every outcome, expected or not, becomes a result the pass can store."""
    try:
        result: object = action.run(ctx)
    except TerminalError as exc:
        return ActionResult(False, "", str(exc), retryable=False)
    except TransientError as exc:
        return ActionResult(False, "", str(exc), retryable=True)
    except ConveyorError as exc:
        return ActionResult(False, "", str(exc), retryable=False)
    except (Exception, SystemExit) as exc:  # a plugin's bug must not kill the engine
        return ActionResult(
            False,
            "",
            f"action {action_name(action)} raised {type(exc).__name__}: {exc}",
            retryable=False,
        )
    if not isinstance(result, ActionResult):  # a plugin's bug the type checker did not see
        return ActionResult(
            False,
            "",
            f"action {action_name(action)} returned {type(result).__name__}, not an ActionResult",
            retryable=False,
        )
    return result
