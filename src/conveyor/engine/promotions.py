"""Moving one promotion through its plan: entry gates, workflow, verification, hooks."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import Any, Literal

from conveyor.clock import utc
from conveyor.engine import claims, due, recall
from conveyor.engine.backoff import backoff
from conveyor.engine.context import gate_context, template_context
from conveyor.engine.passctx import PassContext
from conveyor.gates import GateContext
from conveyor.health.timeline import EntityHealth
from conveyor.model.gate import Fail, GateResult, Pass, Recall, Wait
from conveyor.model.plan import Plan, Stage
from conveyor.model.release import newer
from conveyor.model.schedule import Claim, Holder, claim, ready
from conveyor.model.states import PromotionState as P
from conveyor.store import audit
from conveyor.store.tables import GateResultRow, PromotionRow, ReleaseRow

log = logging.getLogger(__name__)
PLUGIN_TRIES = 5  # a gate that raised this many times in a row fails its promotion


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
    if not pc.lock_environment(p.environment):
        # Another engine is deciding who deploys there: ask again as its pass ends.
        pc.wake_at(pc.now + claims.RETRY)
        return False
    holders = [Holder(o.id, r.product, r.version, P(o.state)) for o, r in pc.holders(p.environment)]
    # Reading what is deployed there costs a query only when a newer version exists at all.
    deployed = (
        pc.deployed_versions(release.product, p.environment)
        if any(newer(v, release.version) for v in pc.triggered_versions(release.product))
        else []
    )
    # A cancelled task of another promotion may still be ending there: it goes first.
    ending = [
        Holder(other, "", "", P.TERMINATED, f"a stopped task of promotion {other} is ending")
        for other in pc.runner.promotions_running(p.environment) - {p.id}
    ]
    decision, detail = claim(p.id, release.version, p.rollback, holders + ending, deployed)
    if decision == Claim.SUPERSEDED:
        pc.move(p, release, P.SUPERSEDED, f"{release.product}@{detail} is already deployed here")
        return False
    if decision == Claim.BUSY:
        reason = f"{due.BUSY}: {detail} in {p.environment}"
        if p.wait_reason != reason:
            p.wait_reason, p.wait_until = reason, None
            pc.moved = True
        return False
    return True


def _gates(
    pc: PassContext, release: ReleaseRow, p: PromotionRow, stage: Stage, upstream: list[str]
) -> bool:
    if p.plugin_errors and p.wait_until is not None and utc(p.wait_until) > pc.now:
        pc.wake_at(p.wait_until)  # a gate failed: not asked again before its backoff ends
        return False
    phase: Literal["entry", "verify"] = "entry" if stage.key == "entry" else "verify"
    ctx = gate_context(
        pc.session,
        release,
        p,
        pc.promotions(release),
        upstream,
        phase,
        pc.now,
        pc.environments,
        pc.health,
        pc.parsed.reports,
    )
    reads_health = ctx.entity_health

    def watched(environment: str) -> dict[str, EntityHealth]:
        pc.release_watches_health = True  # a new report may change this gate's answer
        return reads_health(environment)

    ctx = replace(ctx, entity_health=watched)
    waits: list[Wait] = []
    turns: list[datetime] = []  # when a passing gate may turn
    stored = {row.position: row for row in pc.gate_rows(p, stage.key)}
    for position, entry in enumerate(stage.gates):
        ((kind, raw),) = entry.items()
        try:
            result = _evaluate(pc, p, stage.key, position, kind, raw, ctx)
        except PluginError as exc:
            _store_gate(
                pc, release, p, stage.key, stored.get(position), position, kind, Wait(str(exc))
            )
            _plugin_failed(pc, release, p, str(exc))
            return False
        _store_gate(pc, release, p, stage.key, stored.get(position), position, kind, result)
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
    if p.plugin_errors:
        p.plugin_errors = 0
    if not waits:
        return True
    timed = [w.until for w in waits if w.until is not None]
    until = max(timed) if timed else None
    reason = "; ".join(w.reason for w in waits)
    if (p.wait_reason, p.wait_until and utc(p.wait_until)) != (reason, until):
        if p.wait_reason.startswith(due.BUSY):
            pc.freed.add(p.environment)  # no longer next in line there: the baton passes on
        p.wait_reason, p.wait_until = reason, until
        pc.moved = True
    # Passing needs the latest `until`, but a gate may recall or fail sooner, even one
    # passing now: look again at the earliest.
    pc.wake_at(min([*timed, *turns]) if timed or turns else None)
    return False


class PluginError(Exception):
    """A gate raised or answered something that is not a gate result."""


def _evaluate(
    pc: PassContext,
    p: PromotionRow,
    stage: str,
    position: int,
    kind: str,
    raw: Any,
    ctx: GateContext,
) -> GateResult:
    gate = pc.registry.gates.get(kind)
    if gate is None:
        return Fail(f"unknown gate kind '{kind}'")
    key = (p.id, stage, position)
    try:
        settings = pc.parsed.gate_settings.get(key)
        if settings is None:
            settings = pc.parsed.gate_settings[key] = gate.Settings.model_validate(raw or {})
        result = gate.evaluate(settings, ctx)
    except Exception as exc:  # a plugin's bug harms only this promotion
        log.warning("gate %s of promotion %s raised", kind, p.id, exc_info=True)
        raise PluginError(f"gate {kind} raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(result, (Pass, Wait, Fail, Recall)):
        raise PluginError(f"gate {kind} answered {type(result).__name__}, not a gate result")
    return result


def _plugin_failed(pc: PassContext, release: ReleaseRow, p: PromotionRow, error: str) -> None:
    """Try again later with a growing, jittered backoff; fail after a few tries in a row."""
    p.plugin_errors += 1  # not "moved": the release rests until its backoff has passed
    if p.plugin_errors >= PLUGIN_TRIES:
        fail(pc, release, p, f"{error} ({p.plugin_errors} times in a row)", pc.plan(p))
        return
    until = pc.now + backoff(p.plugin_errors)
    p.wait_reason = f"{error}; trying again ({p.plugin_errors} of {PLUGIN_TRIES})"
    p.wait_until = until
    pc.wake_at(until)


def _store_gate(
    pc: PassContext,
    release: ReleaseRow,
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
    if kind == "approval" and result.kind == "wait" and row.result != "wait":
        # Someone must act: an event, so that notification sinks can tell them.
        ref = f"{release.product}@{release.version}/{p.environment}"
        after = {"reason": result.reason}
        audit.append(pc.session, pc.now, pc.actor, "approval.requested", ref, None, after)
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
    return ready(P(q.state) for q in parents)
