"""An action that waits on something outside asks to be run again later; no thread waits."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import ClassVar

from conveyor.actions import ActionContext, ActionResult, ActionSettings
from conveyor.clock import ManualClock
from conveyor.engine.registry import default_registry
from conveyor.engine.service import Conveyor
from conveyor.store.db import open_store
from tests.conftest import BASE, DIGEST, apply_yaml

DEFS = """
---
apiVersion: conveyor.dev/v1
kind: PromotionFlow
metadata: {name: main}
spec: {version: "1.00", product: shop, triggerEnvironment: dev}
---
apiVersion: conveyor.dev/v1
kind: PromotionPolicy
metadata: {name: all}
spec:
  workflow:
    steps:
      - name: sync
        tasks:
          - {name: wait-synced, uses: test.sync, retries: 0, with: {after: 20}}
"""


class SyncSettings(ActionSettings):
    after: int  # minutes until the outside system reports done


class SyncAction:
    """Like waiting for an Argo CD application to be Synced: done `after` minutes on."""

    name: ClassVar[str] = "test.sync"
    Settings: ClassVar[type[ActionSettings]] = SyncSettings
    polls = 0

    def run(self, ctx: ActionContext) -> ActionResult:
        SyncAction.polls += 1
        settings = SyncSettings.model_validate(ctx.raw)
        if ctx.now - ctx.started_at >= timedelta(minutes=settings.after):
            return ActionResult(True, "synced", "synced")
        return ActionResult(False, "not yet", "not synced", again_after=timedelta(minutes=5))


def triggered(tmp_path: Path, clock: ManualClock) -> Conveyor:
    """A store whose one flow waits on `test.sync`, with shop@1.0.0 triggered on it."""
    SyncAction.polls = 0
    registry = default_registry(plugins=False)
    registry.add_action(SyncAction())
    cv = Conveyor(open_store(f"sqlite:///{tmp_path / 'c.db'}"), clock, registry, "t", tmp_path)
    apply_yaml(cv, BASE + DEFS)
    cv.create_release("shop", "1.0.0", {"web": f"registry.local/web@{DIGEST}"})
    cv.trigger("main", "shop@1.0.0")
    return cv


def test_polling_action_runs_again_until_done_without_using_retries(
    tmp_path: Path, clock: ManualClock
) -> None:
    cv = triggered(tmp_path, clock)
    start = clock.now()

    cv.engine.run_until_idle(max_passes=200)

    view = cv.show("shop@1.0.0")
    assert view.status == "succeeded"
    (task,) = view.nodes[0].tasks
    assert task.status == "succeeded" and task.attempt == 1  # polls are not retries
    assert SyncAction.polls == 5  # at 0, 5, 10, 15 and 20 minutes
    assert clock.now() - start == timedelta(minutes=20)
    cv.close()


def test_while_polling_the_task_waits_with_no_thread(tmp_path: Path, clock: ManualClock) -> None:
    cv = triggered(tmp_path, clock)
    for _ in range(20):  # run passes until the first poll has been recorded
        outcome = cv.engine.run_pass()
        if outcome.inflight == 0 and outcome.next_at is not None:
            break
        cv.engine.wake.wait(5)
    assert outcome.inflight == 0
    assert outcome.next_at == clock.now() + timedelta(minutes=5)
    assert cv.show("shop@1.0.0").nodes[0].tasks[0].status == "polling"
    cv.close()
