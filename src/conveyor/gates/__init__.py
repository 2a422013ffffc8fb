"""Built-in gates, listed explicitly; third parties add theirs via `conveyor.gates` entry points."""

from conveyor.gates.base import Gate, GateContext, GateSettings, HealthRules
from conveyor.gates.canary import CanaryGate
from conveyor.gates.release_label import ReleaseLabelGate
from conveyor.gates.timed import TimedGate

BUILTIN_GATES: list[Gate] = [TimedGate(), ReleaseLabelGate(), CanaryGate()]

__all__ = ["BUILTIN_GATES", "Gate", "GateContext", "GateSettings", "HealthRules"]
