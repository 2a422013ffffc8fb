"""Built-in actions, listed explicitly; third parties add theirs via `conveyor.actions`."""

from conveyor.actions.base import Action, ActionContext, ActionResult, ActionSettings
from conveyor.actions.run import RunAction

BUILTIN_ACTIONS: list[Action] = [RunAction()]

__all__ = ["BUILTIN_ACTIONS", "Action", "ActionContext", "ActionResult", "ActionSettings"]
