"""Batches: the `batch: true` git tasks of one step land in one commit."""

from __future__ import annotations

import uuid

from conveyor.actions import Action, ActionContext
from conveyor.store.tables import TaskRunRow

# Actions that share one commit among the `batch: true` tasks of a step.
BATCHING = ("git.kustomize-set-image", "git.yaml-set")


def group(starts: list[tuple[TaskRunRow, Action, ActionContext]]) -> None:
    """The `batch: true` tasks of one step of one promotion started together form a group
    that lands whole in one commit: each is told the group's key (new for every start, so
    a retry never waits for members that already succeeded) and its size."""
    groups: dict[tuple[int, str, int, str], list[ActionContext]] = {}
    for row, action, ctx in starts:
        if action.name in BATCHING and ctx.raw.get("batch") is True:
            step = (row.release_id, row.scope, row.generation, row.stage)
            groups.setdefault(step, []).append(ctx)
    for members in groups.values():
        if len(members) > 1:
            key = uuid.uuid4().hex
            for ctx in members:
                ctx.batch_key, ctx.batch_size = key, len(members)
