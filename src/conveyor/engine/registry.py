"""The plugins an engine uses: built-ins plus `conveyor.gates` / `conveyor.actions` entry points.

An object handed to the engine and to validation, never a global, so tests can add their own.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from conveyor.actions import BUILTIN_ACTIONS, Action, ActionSettings
from conveyor.errors import ConveyorError
from conveyor.gates import BUILTIN_GATES, Gate, GateSettings


class Registry:
    def __init__(self, gates: list[Gate], actions: list[Action]) -> None:
        self.gates: dict[str, Gate] = {}
        self.actions: dict[str, Action] = {}
        for g in gates:
            self.add_gate(g)
        for a in actions:
            self.add_action(a)

    def add_gate(self, gate: Gate) -> None:
        if gate.kind in self.gates:
            raise ConveyorError(f"gate kind '{gate.kind}' is registered twice")
        self.gates[gate.kind] = gate

    def add_action(self, action: Action) -> None:
        if action.name in self.actions:
            raise ConveyorError(f"action '{action.name}' is registered twice")
        self.actions[action.name] = action

    # The Catalog protocol, for apply-time validation.
    def gate_settings(self, kind: str) -> type[GateSettings] | None:
        gate = self.gates.get(kind)
        return gate.Settings if gate else None

    def action_settings(self, name: str) -> type[ActionSettings] | None:
        action = self.actions.get(name)
        return action.Settings if action else None

    def gate_kinds(self) -> list[str]:
        return sorted(self.gates)

    def action_names(self) -> list[str]:
        return sorted(self.actions)


def default_registry(plugins: bool = True) -> Registry:
    registry = Registry(list(BUILTIN_GATES), list(BUILTIN_ACTIONS))
    if plugins:
        for ep in entry_points(group="conveyor.gates"):
            registry.add_gate(ep.load()())
        for ep in entry_points(group="conveyor.actions"):
            registry.add_action(ep.load()())
    return registry
