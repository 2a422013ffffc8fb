"""One reconcile pass: a session, the time it started, and the shared helpers of its steps."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from conveyor.actions import Action, ActionContext, ActionResult
from conveyor.clock import Clock, SystemClock, utc
from conveyor.engine import batches
from conveyor.engine.parsed import Parsed
from conveyor.engine.passreads import PassReads
from conveyor.engine.registry import Registry
from conveyor.engine.runner import TaskRunner
from conveyor.engine.transitions import move_promotion
from conveyor.health.timeline import EntityHealth
from conveyor.model.definitions import EnvironmentSpec, TaskDef
from conveyor.model.states import UNFINISHED_TASKS, PromotionState, ReleaseStatus, check_release
from conveyor.model.states import TaskStatus as T
from conveyor.store import audit, pglocks
from conveyor.store.tables import GateResultRow, PromotionRow, ReleaseRow, TaskRunRow


@dataclass
class PassContext(PassReads):
    session: Session
    now: datetime
    registry: Registry
    runner: TaskRunner
    owner: str
    workdir: Path
    data_dir: Path
    parsed: Parsed = field(default_factory=Parsed)
    shared: bool = False  # several engines may share the store: environments are locked
    clock: Clock = field(default_factory=SystemClock)  # the engine's, for actions' deadlines
    actor: str = "engine"
    moved: bool = False
    starts: list[tuple[TaskRunRow, Action, ActionContext]] = field(default_factory=list)
    # The release being looked at: when it asked to be looked at again, whether a gate it
    # waits at reads entity health. Stored on the release when the look ends.
    release_wakes: list[datetime] = field(default_factory=list)
    release_watches_health: bool = False
    # Environments a promotion left during the pass: who waited for them is due.
    freed: set[str] = field(default_factory=set)
    # On a shared store: the environments this pass holds, and those it asked for.
    _locked: set[str] = field(default_factory=set)
    _asked: set[str] = field(default_factory=set)
    _task_rows: dict[int, dict[tuple[str, int, str, str], TaskRunRow]] = field(default_factory=dict)
    _promotions: dict[int, list[PromotionRow]] = field(default_factory=dict)
    _gate_rows: dict[tuple[int, int, str], list[GateResultRow]] = field(default_factory=dict)
    _gates_read: set[int] = field(default_factory=set)  # promotions whose results are read
    _deployed: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    _deployed_read: set[str] = field(default_factory=set)  # products read whole
    _versions: dict[str, list[str]] = field(default_factory=dict)
    _holders: dict[str, list[tuple[PromotionRow, ReleaseRow]]] | None = None
    _environments: dict[str, tuple[EnvironmentSpec, dict[str, str]]] | None = None
    # Entity health per (environment, product, version): a pass judges it once.
    health: dict[tuple[str, str, str], dict[str, EntityHealth]] = field(default_factory=dict)

    def lock_environments(self, releases: list[ReleaseRow]) -> None:
        """On a shared store: hold, for the rest of the pass, the environments the releases
        due may deploy to (one query); who deploys there is read after."""
        if not self.shared:
            return
        wanted = {
            p.environment
            for r in releases
            for p in self._promotions.get(r.id, [])
            if p.state in (PromotionState.PENDING, PromotionState.WAITING)
        }
        self._asked |= wanted
        self._locked |= pglocks.try_environments(self.session, wanted)
        self._holders = None

    def lock_environment(self, environment: str) -> bool:
        """Whether this pass may decide who deploys to `environment`: False when another
        engine holds it now."""
        if not self.shared or environment in self._locked:
            return True
        if environment in self._asked:
            return False
        # Not foreseen (a promotion of a release not due at the pass's start): on its own.
        self._asked.add(environment)
        if pglocks.try_environments(self.session, [environment]):
            self._locked.add(environment)
            self.reread_holders(environment)
            return True
        return False

    def begin_release(self) -> None:
        self.release_wakes = []
        self.release_watches_health = False

    def wake_at(self, when: datetime | None) -> None:
        """The release being looked at wants another look at `when`."""
        if when is not None:
            self.release_wakes.append(utc(when))

    # --- transitions, each one audited ---------------------------------------------

    def move(
        self, p: PromotionRow, release: ReleaseRow, state: PromotionState, message: str = ""
    ) -> None:
        old = PromotionState(p.state)
        held = old.holds_environment
        if move_promotion(
            self.session, self.now, self.actor, release, p, state, message, self.freed
        ):
            self.moved = True
            if state.final:
                self.cancel_tasks(release.id, p)  # a final promotion leaves no task queued
            versions = self._deployed.get((release.product, p.environment))
            if versions is not None and state == PromotionState.SUCCEEDED:
                versions.append(release.version)
            elif versions is not None and old == PromotionState.SUCCEEDED:
                versions.remove(release.version)
            if held != state.holds_environment:
                # Listed once if it now holds the environment (a first read may list it).
                holders = self.holders(p.environment)
                holders[:] = [(q, r) for q, r in holders if q.id != p.id]
                if state.holds_environment:
                    holders.append((p, release))

    def set_status(self, release: ReleaseRow, status: ReleaseStatus, message: str = "") -> None:
        old = release.status
        if old == status:
            return
        check_release(f"{release.product}@{release.version}", ReleaseStatus(old), status)
        release.status = status
        if message:
            release.message = message
        if status in (
            ReleaseStatus.SUCCEEDED,
            ReleaseStatus.FAILED,
            ReleaseStatus.SUPERSEDED,
            ReleaseStatus.TERMINATED,
            ReleaseStatus.RECALLED,
        ):
            release.finished_at = self.now
        self.moved = True
        audit.append(
            self.session,
            self.now,
            self.actor,
            f"release.{status}",
            f"{release.product}@{release.version}",
            {"status": old},
            {"status": str(status), "message": message} if message else {"status": str(status)},
        )

    # --- task stages ---------------------------------------------------------------

    def drive_tasks(
        self,
        release: ReleaseRow,
        promotion: PromotionRow | None,
        stage: str,
        tasks: list[TaskDef],
        template: dict[str, Any],
        wait_all: bool = False,
    ) -> tuple[str, str]:
        """Start what is due, then say whether the stage is 'done', 'running' or 'failed'."""
        scope = _scope(promotion)
        generation = promotion.generation if promotion else release.generation
        index = self._task_index(release.id)
        rows = {
            t.name: index[key]
            for t in tasks
            if (key := (scope, generation, stage, t.name)) in index
        }
        for task in tasks:
            row = rows.get(task.name)
            if row is None:
                row = TaskRunRow(
                    release_id=release.id,
                    promotion_id=promotion.id if promotion else None,
                    scope=scope,
                    generation=generation,
                    stage=stage,
                    task=task.name,
                    action=task.uses,
                    status=T.QUEUED,
                    attempt=0,
                )
                self.session.add(row)
                rows[task.name] = index[(scope, generation, stage, task.name)] = row
            due = row.status == T.QUEUED or (
                T(row.status).scheduled
                and row.next_attempt_at is not None
                and utc(row.next_attempt_at) <= self.now
            )
            if due:
                self._start(row, task, template)
            elif T(row.status).scheduled:
                self.wake_at(row.next_attempt_at)
        for task in tasks:
            row = rows[task.name]
            if row.status in (T.FAILED, T.CANCELLED) and task.halt_on_error:
                return "failed", f"task {task.name} {row.status}: {row.error or 'see its output'}"
        if any(not T(rows[t.name].status).final for t in tasks if t.wait_for_finish or wait_all):
            return "running", ""
        return "done", ""

    def _start(self, row: TaskRunRow, task: TaskDef, template: dict[str, Any]) -> None:
        action = self.registry.actions.get(task.uses)
        polling = row.status == T.POLLING
        row.attempt += 1
        if not polling or row.started_at is None:  # a poll continues its attempt
            row.started_at = self.now
        row.finished_at, row.next_attempt_at = None, None
        row.owner = self.owner
        self.moved = True
        if action is None:  # the plugin went away after apply
            row.status, row.error = T.FAILED, f"unknown action kind '{task.uses}'"
            row.finished_at = self.now
            return
        row.status = T.RUNNING
        ctx = ActionContext(
            raw=dict(task.with_),
            template=template,
            workdir=self.workdir,
            timeout_s=task.timeout.total_seconds(),
            data_dir=self.data_dir,
            now=self.now,
            started_at=utc(row.started_at),
            run_key=f"{row.release_id}/{row.scope}/{row.generation}/{row.stage}/{row.task}",
            promotion_id=row.promotion_id,
            clock=self.clock,
        )
        self.starts.append((row, action, ctx))

    def start_tasks(self) -> None:
        """Hand the pass's new tasks to the runner, once the pass is committed: a task never
        runs without a stored row that says so."""
        starts = [(row, action, ctx) for row, action, ctx in self.starts if row.status == T.RUNNING]
        batches.group(starts)
        for row, action, ctx in starts:  # not cancelled later in the same pass
            self.runner.start(row.id, action, ctx)
        self.starts.clear()

    def record(self, row: TaskRunRow, result: ActionResult, task: TaskDef | None) -> None:
        """Store a finished attempt: success, a poll to come, a retry with exponential
        backoff if allowed, or a failure."""
        row.output, row.finished_at = result.output, self.now
        row.error = "" if result.ok else result.summary
        self.moved = True
        if not result.ok and result.again_after is not None:
            # Not done yet and not a failure: look again later; polls use up no retries.
            row.status, row.attempt = T.POLLING, row.attempt - 1
            row.next_attempt_at = self.now + result.again_after
            row.error = ""
            self.wake_at(row.next_attempt_at)
            return
        if result.ok:
            row.status = T.SUCCEEDED
        elif result.retryable and task is not None and row.attempt - row.takeovers <= task.retries:
            row.status = T.RETRYING
            row.next_attempt_at = self.now + task.backoff * (2 ** (row.attempt - row.takeovers - 1))
            self.wake_at(row.next_attempt_at)
        else:
            row.status = T.FAILED
        audit.append(
            self.session,
            self.now,
            self.actor,
            f"task.{row.status}",
            audit.task_subject(self.session, row),
            None,
            {"attempt": row.attempt, "summary": result.summary},
        )

    def cancel_tasks(self, release_id: int, promotion: PromotionRow | None) -> None:
        scope = None if promotion is None else _scope(promotion)
        for row in list(self._task_index(release_id).values()):
            if row.status not in UNFINISHED_TASKS or scope not in (None, row.scope):
                continue
            self.runner.cancel(row.id)
            row.status, row.finished_at = T.CANCELLED, self.now
            row.error = row.error or "cancelled"


def _scope(promotion: PromotionRow | None) -> str:
    return "release" if promotion is None else f"{promotion.node}/{promotion.environment}"
