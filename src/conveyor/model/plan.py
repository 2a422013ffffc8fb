"""A promotion's plan: the ordered stages a merged policy turns into.

The engine keeps a cursor into the plan, so a restarted engine resumes at the stage it
had reached; a stage is either gates (all must pass) or tasks (run in parallel).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from conveyor.model.definitions import Hooks, PolicyBody, TaskDef

Phase = Literal["waiting", "running", "verifying"]


@dataclass(frozen=True)
class Stage:
    key: str  # unique within the plan: "entry", "hook.onStart", "step.deploy", "verify.0"
    phase: Phase
    gates: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[TaskDef] = field(default_factory=list)

    @property
    def is_gate(self) -> bool:
        return not self.tasks


@dataclass(frozen=True)
class Plan:
    stages: list[Stage]
    on_fail: list[TaskDef]

    def stage(self, key: str) -> Stage | None:
        return next((s for s in self.stages if s.key == key), None)


def build_plan(body: PolicyBody) -> Plan:
    hooks = body.hooks or Hooks()
    stages: list[Stage] = []
    if body.gates:
        stages.append(Stage("entry", "waiting", gates=list(body.gates)))
    if hooks.onStart:
        stages.append(Stage("hook.onStart", "running", tasks=list(hooks.onStart)))
    for step in body.workflow.steps if body.workflow else []:
        stages.append(Stage(f"step.{step.name}", "running", tasks=list(step.tasks)))
    stages.extend(verify_stages(body.verify or []))
    if hooks.onSuccess:
        stages.append(Stage("hook.onSuccess", "verifying", tasks=list(hooks.onSuccess)))
    return Plan(stages, list(hooks.onFail))


def is_task_entry(entry: dict[str, Any]) -> bool:
    return "uses" in entry


def verify_stages(entries: list[dict[str, Any]]) -> list[Stage]:
    """Consecutive gates form one gate stage, consecutive tasks one task stage, in order."""
    out: list[Stage] = []
    for i, entry in enumerate(entries):
        is_task = is_task_entry(entry)
        last = out[-1] if out else None
        if last is not None and (not last.is_gate) == is_task:
            if is_task:
                last.tasks.append(TaskDef.model_validate(entry))
            else:
                last.gates.append(entry)
            continue
        if is_task:
            out.append(Stage(f"verify.{i}", "verifying", tasks=[TaskDef.model_validate(entry)]))
        else:
            out.append(Stage(f"verify.{i}", "verifying", gates=[entry]))
    return out


def release_plan(hooks: Hooks) -> tuple[Stage | None, Stage | None, list[TaskDef]]:
    """Release-level hooks: onStart before the root node, onSuccess after the last node."""
    start = (
        Stage("release.onStart", "running", tasks=list(hooks.onStart)) if hooks.onStart else None
    )
    done = (
        Stage("release.onSuccess", "running", tasks=list(hooks.onSuccess))
        if hooks.onSuccess
        else None
    )
    return start, done, list(hooks.onFail)
