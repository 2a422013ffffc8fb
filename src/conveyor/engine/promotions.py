"""Moving one promotion through its plan: entry gates, workflow, verification, hooks."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select

from conveyor.clock import utc
from conveyor.engine import recall
from conveyor.engine.context import gate_context, template_context
from conveyor.engine.passctx import PassContext
from conveyor.model.gate import Fail, GateResult, Recall, Wait
from conveyor.model.plan import Plan, Stage
from conveyor.model.release import newer, parse_version
from conveyor.model.states import PromotionState as P
from conveyor.store.tables import GateResultRow, PromotionRow, ReleaseRow


def advance(pc: PassContext, release: ReleaseRow, p: PromotionRow, upstream: list[str]) -> None:
    """Move `p` as far as it can go now. Safe to call any number of times (level-triggered)."""
    plan = pc.plan(p)
    if p.fail_hooks_pending:
        _run_fail_hooks(pc, release, p, plan)
        return
    if not P(p.state).active:
        return
    if _background(pc, release, p, plan) is None:
        return
    for _ in range(len(plan.stages) + 1):  # each turn passes one stage or returns
        if p.cursor >= len(plan.stages):
            break
        stage = plan.stages[p.cursor]
        if not _enter(pc, release, p, stage.phase):
            return
        # Success is announced only once the tasks left running in the background are done.
        if stage.key == "hook.onSuccess" and not _background(pc, release, p, plan):
            return
        passed = (
            _gates(pc, release, p, stage, upstream)
            if stage.is_gate
            else _tasks(pc, release, p, stage)
        )
        if not passed:
            return
        p.cursor += 1
        p.wait_reason, p.wait_until = "", None
        pc.moved = True
    if _enter(pc, release, p, "verifying") and _background(pc, release, p, plan):
        pc.move(p, release, P.SUCCEEDED)


def _enter(pc: PassContext, release: ReleaseRow, p: PromotionRow, phase: str) -> bool:
    """Make the state match the phase of the stage at hand; False if it cannot yet."""
    if phase == "waiting":
        return True
    if p.state == P.WAITING:
        if not _claim_environment(pc, release, p):
            return False
        pc.move(p, release, P.RUNNING)
        p.started_at = p.started_at or pc.now
    if phase == "verifying" and p.state == P.RUNNING:
        p.deployed_at = pc.now
        pc.move(p, release, P.VERIFYING)
    return True


def _claim_environment(pc: PassContext, release: ReleaseRow, p: PromotionRow) -> bool:
    """One promotion deploys to an environment at a time; never an older over a newer one."""
    # A rollback was asked for: it is the one promotion that may put an older release back.
    ahead = None if p.rollback else _newer_deployed(pc, release, p.environment)
    if ahead is not None:
        pc.move(p, release, P.SUPERSEDED, f"{release.product}@{ahead} is already deployed here")
        return False
    busy = [(o, r) for o, r in pc.holders(p.environment) if o.id != p.id]
    if busy:
        o, r = busy[0]
        reason = f"environment busy: {r.product}@{r.version} is {o.state} in {p.environment}"
        if p.wait_reason != reason:
            p.wait_reason, p.wait_until = reason, None
            pc.moved = True
        return False
    return True


def _newer_deployed(pc: PassContext, release: ReleaseRow, environment: str) -> str | None:
    """The newest version of the product above this release's deployed in `environment`."""
    if not any(newer(v, release.version) for v in pc.triggered_versions(release.product)):
        return None  # the common case, with no query per environment
    # Only promotions of releases older than this one can have succeeded earlier in this
    # pass (releases are reconciled oldest first), so unflushed changes cannot matter here.
    with pc.session.no_autoflush:
        deployed = pc.session.scalars(
            select(ReleaseRow.version)
            .join(PromotionRow, PromotionRow.release_id == ReleaseRow.id)
            .where(
                PromotionRow.environment == environment,
                PromotionRow.state == P.SUCCEEDED,
                ReleaseRow.product == release.product,
            )
        ).all()
    ahead = [v for v in deployed if newer(v, release.version)]
    return max(ahead, key=parse_version) if ahead else None


def _gates(
    pc: PassContext, release: ReleaseRow, p: PromotionRow, stage: Stage, upstream: list[str]
) -> bool:
    phase: Literal["entry", "verify"] = "entry" if stage.key == "entry" else "verify"
    ctx = gate_context(pc.session, release, p, upstream, phase, pc.now, pc.environments, pc.health)
    waits: list[Wait] = []
    turns: list[datetime] = []  # when a passing gate may turn
    stored = {
        row.position: row
        for row in pc.session.scalars(
            select(GateResultRow).where(
                GateResultRow.promotion_id == p.id,
                GateResultRow.generation == p.generation,
                GateResultRow.stage == stage.key,
            )
        )
    }
    for position, entry in enumerate(stage.gates):
        ((kind, raw),) = entry.items()
        gate = pc.registry.gates.get(kind)
        result: GateResult
        if gate is None:
            result = Fail(f"unknown gate kind '{kind}'")
        else:
            result = gate.evaluate(gate.Settings.model_validate(raw or {}), ctx)
        _store_gate(pc, p, stage.key, stored.get(position), position, kind, result)
        if isinstance(result, Recall):
            recall.recall(pc.session, release, f"{kind}: {result.reason}", pc.actor, pc.now)
            pc.cancel_tasks(release.id, None)
            pc.moved = True
            return False
        if isinstance(result, Fail):
            fail(pc, release, p, f"{kind}: {result.reason}", pc.plan(p))
            return False
        if isinstance(result, Wait):
            waits.append(result)
        elif result.until is not None:
            turns.append(result.until)
    if not waits:
        return True
    timed = [w.until for w in waits if w.until is not None]
    until = max(timed) if timed else None
    reason = "; ".join(w.reason for w in waits)
    if (p.wait_reason, p.wait_until and utc(p.wait_until)) != (reason, until):
        p.wait_reason, p.wait_until = reason, until
        pc.moved = True
    # Passing needs the latest `until`, but a gate may recall or fail sooner, even one
    # passing now: look again at the earliest.
    pc.wake_at(min([*timed, *turns]) if timed or turns else None)
    return False


def _store_gate(
    pc: PassContext,
    p: PromotionRow,
    stage: str,
    row: GateResultRow | None,
    position: int,
    kind: str,
    result: GateResult,
) -> None:
    if row is None:
        row = GateResultRow(
            promotion_id=p.id, generation=p.generation, stage=stage, position=position, kind=kind
        )
        pc.session.add(row)
    until = result.until if isinstance(result, Wait) else None
    if (row.result, row.reason, row.until) != (result.kind, result.reason, until):
        row.result, row.reason, row.until = result.kind, result.reason, until
    row.evaluated_at = pc.now


def _tasks(pc: PassContext, release: ReleaseRow, p: PromotionRow, stage: Stage) -> bool:
    template = template_context(release, p.environment, pc.environments)
    status, reason = pc.drive_tasks(release, p, stage.key, stage.tasks, template)
    if status == "failed":
        fail(pc, release, p, reason, pc.plan(p))
    if status == "running" and p.wait_reason:
        p.wait_reason, p.wait_until = "", None
    return status == "done"


def _background(pc: PassContext, release: ReleaseRow, p: PromotionRow, plan: Plan) -> bool | None:
    """Drive the tasks that passed stages left running (wait_for_finish: false), retries
    included. True when all have ended, False while some run, None if one failed `p`."""
    done = True
    template: dict[str, Any] | None = None
    for stage in plan.stages[: p.cursor]:
        background = [t for t in stage.tasks if not t.wait_for_finish]
        if not background:
            continue
        template = template or template_context(release, p.environment, pc.environments)
        status, reason = pc.drive_tasks(release, p, stage.key, background, template, wait_all=True)
        if status == "failed":
            fail(pc, release, p, reason, plan)
            return None
        done = done and status == "done"
    return done


def fail(pc: PassContext, release: ReleaseRow, p: PromotionRow, reason: str, plan: Plan) -> None:
    pc.cancel_tasks(release.id, p)
    pc.move(p, release, P.FAILED, reason)
    p.fail_hooks_pending = bool(plan.on_fail)
    if p.fail_hooks_pending:
        _run_fail_hooks(pc, release, p, plan)


def _run_fail_hooks(pc: PassContext, release: ReleaseRow, p: PromotionRow, plan: Plan) -> None:
    template = template_context(release, p.environment, pc.environments)
    status, reason = pc.drive_tasks(release, p, "hook.onFail", plan.on_fail, template)
    if status == "running":
        return
    p.fail_hooks_pending = False
    if status == "failed":
        p.message = f"{p.message}; onFail hook: {reason}"
    pc.moved = True


def is_ready(parents: list[PromotionRow]) -> bool:
    return all(q.state == P.SUCCEEDED for q in parents)
