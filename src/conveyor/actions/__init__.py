"""Built-in actions, listed explicitly; third parties add theirs via `conveyor.actions`."""

from conveyor.actions.base import Action, ActionContext, ActionResult, ActionSettings
from conveyor.actions.git_kustomize import KustomizeSetImageAction
from conveyor.actions.git_merge import MergeAction
from conveyor.actions.git_revert import RevertAction
from conveyor.actions.git_tag import TagAction
from conveyor.actions.git_yaml_set import YamlSetAction
from conveyor.actions.http import HttpAction
from conveyor.actions.registry_copy import RegistryCopyAction
from conveyor.actions.run import RunAction

BUILTIN_ACTIONS: list[Action] = [
    RunAction(),
    HttpAction(),
    KustomizeSetImageAction(),
    YamlSetAction(),
    MergeAction(),
    TagAction(),
    RevertAction(),
    RegistryCopyAction(),
]

__all__ = ["BUILTIN_ACTIONS", "Action", "ActionContext", "ActionResult", "ActionSettings"]
