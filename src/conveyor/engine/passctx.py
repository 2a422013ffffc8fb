"""One reconcile pass: a session, the time it started, and the shared helpers of its steps."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from conveyor.actions import Action, ActionContext, ActionResult
from conveyor.clock import utc
from conveyor.engine import batches, resources
from conveyor.engine.context import flow_spec, policy_body, policy_from
from conveyor.engine.parsed import FlowParts, Parsed
from conveyor.engine.registry import Registry
from conveyor.engine.runner import TaskRunner
from conveyor.engine.transitions import move_promotion
from conveyor.health.timeline import EntityHealth
from conveyor.model.definitions import EnvironmentSpec, TaskDef
from conveyor.model.flow import build_graph
from conveyor.model.plan import Plan, build_plan, release_plan
from conveyor.model.states import UNFINISHED_TASKS, PromotionState, ReleaseStatus, check_release
from conveyor.model.states import TaskStatus as T
from conveyor.store import audit
from conveyor.store.tables import GateResultRow, PromotionRow, ReleaseRow, TaskRunRow

CHUNK = 500  # ids per IN (...) list


@dataclass
class PassContext:
    session: Session
    now: datetime
    registry: Registry
    runner: TaskRunner
    owner: str
    workdir: Path
    data_dir: Path
    parsed: Parsed = field(default_factory=Parsed)
    actor: str = "engine"
    moved: bool = False
    starts: list[tuple[TaskRunRow, Action, ActionContext]] = field(default_factory=list)
    # The release being looked at: when it asked to be looked at again, whether a gate it
    # waits at reads entity health. Stored on the release when the look ends.
    release_wakes: list[datetime] = field(default_factory=list)
    release_watches_health: bool = False
    # Environments a promotion left during the pass: who waited for them is due.
    freed: set[str] = field(default_factory=set)
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

    def preload(self, releases: list[ReleaseRow]) -> None:
        """Read the promotions, task runs and current gate results of the releases due, in
        a fixed number of queries (chunked), instead of a few per release."""
        ids = [r.id for r in releases]
        for chunk in (ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)):
            for release_id in chunk:
                self._promotions[release_id] = []
                self._task_rows[release_id] = {}
            promotions = self.session.scalars(
                select(PromotionRow)
                .where(PromotionRow.release_id.in_(chunk))
                .order_by(PromotionRow.id)
            )
            for p in promotions:
                self._promotions[p.release_id].append(p)
                self._gates_read.add(p.id)
            self.parse_plans([p.id for r in chunk for p in self._promotions[r]])
            for row in self.session.scalars(
                select(TaskRunRow).where(TaskRunRow.release_id.in_(chunk))
            ):
                key = (row.scope, row.generation, row.stage, row.task)
                self._task_rows[row.release_id][key] = row
            for g in self.session.scalars(
                select(GateResultRow)
                .join(PromotionRow, GateResultRow.promotion_id == PromotionRow.id)
                .where(
                    PromotionRow.release_id.in_(chunk),
                    GateResultRow.generation == PromotionRow.generation,
                )
            ):
                self._gate_rows.setdefault((g.promotion_id, g.generation, g.stage), []).append(g)
        self._read_versions({r.product for r in releases})

    def _read_versions(self, products: set[str]) -> None:
        """For the products of the releases due: the versions ever triggered, and which
        succeeded where (for "never an older release over a newer one"), in two queries."""
        if not products:
            return
        with self.session.no_autoflush:
            for product in products:
                self._versions[product] = []
            triggered = select(ReleaseRow.product, ReleaseRow.version).where(
                ReleaseRow.product.in_(products), ReleaseRow.status != ReleaseStatus.CREATED
            )
            for product, version in self.session.execute(triggered):
                self._versions[product].append(version)
            succeeded = (
                select(ReleaseRow.product, PromotionRow.environment, ReleaseRow.version)
                .join(PromotionRow, PromotionRow.release_id == ReleaseRow.id)
                .where(
                    ReleaseRow.product.in_(products),
                    PromotionRow.state == PromotionState.SUCCEEDED,
                )
            )
            for product, environment, version in self.session.execute(succeeded):
                self._deployed.setdefault((product, environment), []).append(version)
            self._deployed_read.update(products)

    def parse_plans(self, ids: list[int]) -> None:
        """Parse the plans not parsed yet, their policies read in one query (the column is
        deferred: most passes need none)."""
        missing = [i for i in ids if i not in self.parsed.plans]
        if missing:
            with self.session.no_autoflush:
                rows = self.session.execute(
                    select(PromotionRow.id, PromotionRow.policy).where(PromotionRow.id.in_(missing))
                )
                for pid, policy in rows:
                    self.parsed.plans[pid] = build_plan(policy_from(policy))

    def promotions(self, release: ReleaseRow) -> list[PromotionRow]:
        found = self._promotions.get(release.id)
        if found is None:
            found = self._promotions[release.id] = list(
                self.session.scalars(
                    select(PromotionRow)
                    .where(PromotionRow.release_id == release.id)
                    .order_by(PromotionRow.id)
                )
            )
        return found

    def gate_rows(self, p: PromotionRow, stage: str) -> list[GateResultRow]:
        """The stored results of a promotion's gates at `stage` in its current generation."""
        key = (p.id, p.generation, stage)
        if key not in self._gate_rows and p.id in self._gates_read:
            self._gate_rows[key] = []  # read with the release: it has none yet
        if key not in self._gate_rows:
            self._gate_rows[key] = list(
                self.session.scalars(
                    select(GateResultRow).where(
                        GateResultRow.promotion_id == p.id,
                        GateResultRow.generation == p.generation,
                        GateResultRow.stage == stage,
                    )
                )
            )
        return self._gate_rows[key]

    def begin_release(self) -> None:
        self.release_wakes = []
        self.release_watches_health = False

    def forget(self, release_id: int) -> None:
        """A look at a release was rolled back: what the pass cached of it may be stale."""
        self._task_rows.pop(release_id, None)
        self._promotions.pop(release_id, None)
        self._gate_rows.clear()
        self._gates_read.clear()
        self._deployed.clear()
        self._deployed_read.clear()
        self._holders = None

    @property
    def environments(self) -> dict[str, tuple[EnvironmentSpec, dict[str, str]]]:
        """The environments as defined now, read once per pass."""
        if self._environments is None:
            self._environments = resources.environments(self.session)
        return self._environments

    def plan(self, p: PromotionRow) -> Plan:
        """A promotion's plan, parsed once (its policy never changes)."""
        plan = self.parsed.plans.get(p.id)
        if plan is None:
            plan = self.parsed.plans[p.id] = build_plan(policy_body(p))
        return plan

    def flow(self, release: ReleaseRow) -> FlowParts:
        """A release's flow (as triggered), its graph and hooks, parsed once per revision."""
        key = (release.flow, release.flow_revision)
        parts = self.parsed.flows.get(key)
        if parts is None:
            spec = flow_spec(release)
            graph, _ = build_graph(spec)
            parts = self.parsed.flows[key] = FlowParts(spec, graph, *release_plan(spec.hooks))
        return parts

    def triggered_versions(self, product: str) -> list[str]:
        """Versions of a product that were ever sent down a flow, read once per pass."""
        versions = self._versions.get(product)
        if versions is None:
            with self.session.no_autoflush:
                versions = self._versions[product] = list(
                    self.session.scalars(
                        select(ReleaseRow.version).where(
                            ReleaseRow.product == product,
                            ReleaseRow.status != ReleaseStatus.CREATED,
                        )
                    )
                )
        return versions

    def deployed_versions(self, product: str, environment: str) -> list[str]:
        """Versions of `product` that succeeded in `environment`: read once per pass for
        each pair, and kept up to date as the pass's promotions succeed or are recalled."""
        key = (product, environment)
        versions = self._deployed.get(key)
        if versions is None and product in self._deployed_read:
            versions = self._deployed[key] = []  # read with the product: none there yet
        if versions is None:
            with self.session.no_autoflush:
                versions = self._deployed[key] = list(
                    self.session.scalars(
                        select(ReleaseRow.version)
                        .join(PromotionRow, PromotionRow.release_id == ReleaseRow.id)
                        .where(
                            PromotionRow.environment == environment,
                            PromotionRow.state == PromotionState.SUCCEEDED,
                            ReleaseRow.product == product,
                        )
                    )
                )
        return versions

    def _task_index(self, release_id: int) -> dict[tuple[str, int, str, str], TaskRunRow]:
        """A release's task rows, read once per pass: only the pass writes them."""
        index = self._task_rows.get(release_id)
        if index is None:
            rows = self.session.scalars(
                select(TaskRunRow).where(TaskRunRow.release_id == release_id)
            )
            index = {(r.scope, r.generation, r.stage, r.task): r for r in rows}
            self._task_rows[release_id] = index
        return index

    def holders(self, environment: str) -> list[tuple[PromotionRow, ReleaseRow]]:
        """The promotions deploying to an environment now (running or verifying)."""
        if self._holders is None:
            self._holders = {}
            held = self.session.execute(
                select(PromotionRow, ReleaseRow)
                .join(ReleaseRow, PromotionRow.release_id == ReleaseRow.id)
                .where(PromotionRow.state.in_([PromotionState.RUNNING, PromotionState.VERIFYING]))
            ).all()
            for p, r in held:
                self._holders.setdefault(p.environment, []).append((p, r))
        return self._holders.setdefault(environment, [])

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
        if move_promotion(self.session, self.now, self.actor, release, p, state, message):
            self.moved = True
            if held and not state.holds_environment:
                self.freed.add(p.environment)
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
            f"{row.scope}/{row.stage}/{row.task}",
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
