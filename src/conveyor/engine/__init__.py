"""The engine: reconcile passes, the workflow runner, and the operations people call."""

from conveyor.engine.reconciler import Engine, PassOutcome
from conveyor.engine.registry import Registry, default_registry

__all__ = ["Engine", "PassOutcome", "Registry", "default_registry"]
