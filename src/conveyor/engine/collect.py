"""What a pass stores first: the tasks that finished since the last one, and the tasks of
releases stopped by another process (terminated, recalled), which this engine cancels."""

from __future__ import annotations

from sqlalchemy import select

from conveyor.engine import due
from conveyor.engine.passctx import PassContext
from conveyor.engine.runner import Finished, TaskRunner
from conveyor.model.definitions import TaskDef
from conveyor.model.states import ReleaseStatus as R
from conveyor.model.states import TaskStatus as T
from conveyor.store.tables import ReleaseRow, TaskRunRow


def finished(pc: PassContext, results: list[Finished]) -> None:
    """Store each result (success, poll, retry or failure); their releases are due."""
    if not results:
        return
    # Read together, with their promotions' plans and their releases (their events name
    # them), not one by one; the releases held here, as the session keeps only what is
    # referenced.
    ids = [done.run_id for done in results]
    rows = {r.id: r for r in pc.session.scalars(select(TaskRunRow).where(TaskRunRow.id.in_(ids)))}
    releases = pc.session.scalars(
        select(ReleaseRow).where(ReleaseRow.id.in_({r.release_id for r in rows.values()}))
    ).all()
    pc.parse_plans([r.promotion_id for r in rows.values() if r.promotion_id is not None])
    due_ids: set[int] = set()
    for done in results:
        row = rows.get(done.run_id)
        if row is None or row.owner != pc.owner:
            # Taken over meanwhile (this engine's lease had lapsed): the new attempt's
            # result counts, not this one's.
            continue
        due_ids.add(row.release_id)
        if row.promotion_id is not None:  # who waited for its environment looks again
            pc.freed.add(row.scope.partition("/")[2])
        if row.status == T.CANCELLED:  # stopped on purpose; keep what it printed
            row.output = done.result.output
            continue
        pc.record(row, done.result, _task_def(pc, row))
    due.mark_ids(pc.session, due_ids, pc.now)
    del releases


def stopped(pc: PassContext, runner: TaskRunner) -> None:
    """Cancel this engine's running tasks of releases another process terminated or
    recalled (each engine its own: only it can stop them)."""
    if not runner.inflight:
        return
    rows = pc.session.scalars(
        select(TaskRunRow)
        .join(ReleaseRow, TaskRunRow.release_id == ReleaseRow.id)
        .where(
            TaskRunRow.status == T.RUNNING,
            TaskRunRow.owner == pc.owner,
            ReleaseRow.status.in_([R.TERMINATED, R.RECALLED]),
        )
    )
    due_ids: set[int] = set()
    for row in rows:
        runner.cancel(row.id)
        row.status, row.finished_at, row.error = T.CANCELLED, pc.now, "release stopped"
        due_ids.add(row.release_id)
        pc.moved = True
    due.mark_ids(pc.session, due_ids, pc.now)


def _task_def(pc: PassContext, row: TaskRunRow) -> TaskDef | None:
    if row.promotion_id is not None:
        pc.parse_plans([row.promotion_id])
        plan = pc.parsed.plans.get(row.promotion_id)
        stage = plan.stage(row.stage) if plan else None
        tasks = stage.tasks if stage else (plan.on_fail if plan else [])
    else:
        release = pc.session.get(ReleaseRow, row.release_id)
        hooks = pc.flow(release).spec.hooks if release else None
        tasks = [*hooks.onStart, *hooks.onSuccess, *hooks.onFail] if hooks else []
    return next((t for t in tasks if t.name == row.task), None)
