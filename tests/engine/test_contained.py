"""A gate that raises or answers garbage harms only its own promotion: the pass goes on for
every other release, the error is recorded with the gate's name, tried again with a growing
backoff, then the promotion fails."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

from conveyor.clock import ManualClock
from conveyor.engine.registry import default_registry
from conveyor.engine.service import Conveyor
from conveyor.gates.base import GateContext, GateSettings
from conveyor.model.gate import GateResult
from conveyor.store.db import open_store
from tests.conftest import BASE, apply_yaml, digest


class BrokenSettings(GateSettings):
    answer: str = "raise"


class BrokenGate:
    """Raises for product `bad`, answers garbage for `odd`; passes for anything else."""

    kind: ClassVar[str] = "broken"
    Settings: ClassVar[type[GateSettings]] = BrokenSettings
    calls: ClassVar[dict[str, int]] = {}

    def evaluate(self, settings: BrokenSettings, ctx: GateContext) -> GateResult:
        mood = ctx.release.labels.get("mood", "")
        BrokenGate.calls[mood] = BrokenGate.calls.get(mood, 0) + 1
        if ctx.release.labels.get("mood") == "raise":
            raise RuntimeError("the plugin's own bug")
        if ctx.release.labels.get("mood") == "garbage":
            result: Any = {"pass": True}
            return result  # type: ignore[no-any-return]
        from conveyor.model.gate import Pass

        return Pass("fine")


DEFS = """
---
apiVersion: conveyor.dev/v1
kind: PromotionFlow
metadata: {name: main}
spec:
  version: "1.00"
  product: shop
  triggerEnvironment: dev
  concurrency: {mode: queue, limit: 10}
  environments:
    - {name: qa, dependsOn: [dev]}
---
apiVersion: conveyor.dev/v1
kind: PromotionPolicy
metadata: {name: all}
spec:
  gates:
    - broken: {}
  workflow:
    steps:
      - name: deploy
        tasks:
          - {name: ok, uses: run, with: {args: ["true"]}}
"""


def conveyor(tmp_path: Path, clock: ManualClock) -> Conveyor:
    registry = default_registry(plugins=False)
    registry.add_gate(BrokenGate())
    work = tmp_path / "work"
    work.mkdir()
    return Conveyor(
        open_store(f"sqlite:///{tmp_path / 'c.db'}"),
        clock=clock,
        registry=registry,
        actor="tester",
        workdir=work,
    )


def test_a_raising_gate_harms_only_its_promotion(tmp_path: Path) -> None:
    clock = ManualClock()
    cv = conveyor(tmp_path, clock)
    apply_yaml(cv, BASE + DEFS)
    for n, mood in enumerate(["raise", "fine", "garbage", "fine"]):
        version = f"1.{n}.0"
        cv.create_release("shop", version, {"web": f"registry.local/web@{digest(n + 1)}"})
        cv.label(f"shop@{version}", {"mood": mood})
        cv.trigger("main", f"shop@{version}")
    start = clock.now()
    outcome = cv.engine.run_pass()
    while outcome.moved:
        outcome = cv.engine.run_pass()

    # The others moved on in the same passes; the broken ones wait, saying why and who.
    views = {v: cv.show(f"shop@{v}") for v in ("1.0.0", "1.1.0", "1.2.0", "1.3.0")}
    dev = {v: next(n for n in view.nodes if n.environment == "dev") for v, view in views.items()}
    assert dev["1.1.0"].state in ("running", "verifying", "succeeded")  # moved on
    # (1.3.0 waits for dev, which 1.1.0 deploys to, but its gate was asked and passed.)
    assert [g["result"] for g in dev["1.3.0"].gates] == ["pass"]
    assert dev["1.0.0"].state == "waiting"
    assert "gate broken raised RuntimeError: the plugin's own bug" in dev["1.0.0"].detail
    assert "(1 of 5)" in dev["1.0.0"].detail
    assert dev["1.2.0"].state == "waiting"
    assert "gate broken answered dict, not a gate result" in dev["1.2.0"].detail

    # Tried again after a growing, jittered backoff; failed after five tries in a row.
    BrokenGate.calls = {}
    for _ in range(20):
        if cv.show("shop@1.0.0").status != "running":
            break
        assert outcome.next_at is not None
        clock.set(outcome.next_at)
        outcome = cv.engine.run_pass()
        while outcome.moved:
            outcome = cv.engine.run_pass()
    view = cv.show("shop@1.0.0")
    assert view.status == "failed"
    dev_node = next(n for n in view.nodes if n.environment == "dev")
    assert dev_node.state == "failed"
    assert "gate broken raised RuntimeError: the plugin's own bug (5 times in a row)" in (
        dev_node.detail
    )
    assert BrokenGate.calls["raise"] == 4  # after the first
    # Waits of 1, 2, 4 and 8 seconds, each drawn from half to all of its step.
    assert timedelta(seconds=7.5) <= clock.now() - start <= timedelta(seconds=15)
    cv.run_until_idle()
    assert cv.show("shop@1.1.0").status == "succeeded"
    assert cv.show("shop@1.3.0").status == "succeeded"
    assert cv.show("shop@1.2.0").status == "failed"
    cv.close()
