"""Built-in gates, listed explicitly; third parties add theirs via `conveyor.gates` entry points."""

from conveyor.gates.approval import ApprovalGate
from conveyor.gates.base import Gate, GateContext, GateSettings, HealthRules
from conveyor.gates.canary import CanaryGate
from conveyor.gates.release_label import ReleaseLabelGate
from conveyor.gates.timed import TimedGate
from conveyor.gates.window import WindowGate

BUILTIN_GATES: list[Gate] = [
    TimedGate(),
    ReleaseLabelGate(),
    CanaryGate(),
    WindowGate(),
    ApprovalGate(),
]

__all__ = ["BUILTIN_GATES", "Gate", "GateContext", "GateSettings", "HealthRules"]
