"""What a simulation runs instead of the real thing: actions that succeed at once without
doing anything, and approvals given as soon as they are asked for."""

from __future__ import annotations

from typing import ClassVar

from conveyor.actions import Action, ActionContext, ActionResult, ActionSettings
from conveyor.engine.registry import Registry, default_registry
from conveyor.gates import GateContext
from conveyor.gates.approval import ApprovalGate, ApprovalSettings
from conveyor.model.gate import GateResult, Pass


def simulated_registry(base: Registry | None = None) -> Registry:
    """The real gates but approvals, which a forecast assumes are given when asked (people
    cannot be replayed); each action replaced by one of the same name and settings that
    succeeds at once without doing anything."""
    base = base or default_registry()
    gates = [_AssumedApproval() if g.kind == "approval" else g for g in base.gates.values()]
    return Registry(gates, [_simulated(a) for a in base.actions.values()])


class _AssumedApproval(ApprovalGate):
    def evaluate(self, settings: ApprovalSettings, ctx: GateContext) -> GateResult:
        return Pass("approval assumed given: " + ", ".join(str(r) for r in settings.rules()))


def _simulated(real: Action) -> Action:
    class Simulated:
        name: ClassVar[str] = real.name
        Settings: ClassVar[type[ActionSettings]] = real.Settings

        def run(self, ctx: ActionContext) -> ActionResult:
            return ActionResult(True, "simulated", "simulated")

    return Simulated()
