"""Apply-time checks of gates and tasks inside a policy: known kinds, settings, templates."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from pydantic import BaseModel, ValidationError

from conveyor.model.definitions import TaskDef
from conveyor.model.plugins import Catalog
from conveyor.model.template import TemplateError, check_shape, strings_in
from conveyor.spec.loader import Path

# (where, what), and for a template the offset of `${{` in its string (for the column).
Finding = tuple[Path, str] | tuple[Path, str, int]


def settings_errors(model: type[BaseModel], value: Any, path: Path) -> list[Finding]:
    """The problems pydantic finds in `value`, as (path, message) with friendly wording."""
    try:
        model.model_validate(value if value is not None else {})
    except ValidationError as exc:
        out: list[Finding] = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if isinstance(p, str | int))
            if err["type"] == "extra_forbidden":
                msg = (
                    f"unknown field '{loc[-1]}': check its spelling "
                    "(`conveyor schema` lists the fields)"
                )
            elif err["type"] == "missing":
                msg = f"required field '{loc[-1]}' is missing"
            else:
                msg = str(err["msg"]).removeprefix("Value error, ")
                loc = _duplicate_item(value, loc, msg)
            out.append(((*path, *loc), msg))
        return out
    return []


_TWICE = re.compile(r"'(?P<name>[^']+)' appears twice")


def _duplicate_item(value: Any, loc: Path, message: str) -> Path:
    """A name given twice is reported by its model, a level up: point at the second item
    that has it instead, which is what the user has to change."""
    match = _TWICE.search(message)
    node = value
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return loc
    if match is None or not isinstance(node, dict):
        return loc
    for key, items in node.items():
        if not isinstance(items, list):
            continue
        names = [i.get("name") if isinstance(i, dict) else None for i in items]
        if names.count(match["name"]) > 1:
            second = names.index(match["name"], names.index(match["name"]) + 1)
            return (*loc, key, second, "name")
    return loc


def check_gate(
    entry: Any, where: Path, catalog: Catalog, environments: Collection[str] | None = None
) -> list[Finding]:
    if not isinstance(entry, dict) or len(entry) != 1:
        return [
            (where, "a gate is written as one key, its kind: for example {timed: {duration: 2h}}")
        ]
    ((kind, settings),) = entry.items()
    model = catalog.gate_settings(kind)
    if model is None:
        return [
            (
                (*where, kind),
                f"unknown gate kind '{kind}': use one of {', '.join(catalog.gate_kinds())}",
            )
        ]
    found = settings_errors(model, settings, (*where, kind))
    if not found and environments is not None:
        known = ", ".join(sorted(environments))
        found = [
            (path, f"environment '{name}' is not defined: use one of {known}")
            for path, name in environment_names(settings, (*where, kind))
            if name not in environments
        ]
    return found


def environment_names(value: Any, path: Path) -> list[tuple[Path, str]]:
    """The environments a gate's settings name: by convention every gate calls such a
    setting `in` (one environment) or `environments` (a list), at any depth."""
    found: list[tuple[Path, str]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "in" and isinstance(item, str):
                found.append(((*path, key), item))
            elif key == "environments" and isinstance(item, list):
                found += [((*path, key, i), n) for i, n in enumerate(item) if isinstance(n, str)]
            else:
                found += environment_names(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += environment_names(item, (*path, i))
    return found


def check_task(task: Any, where: Path, catalog: Catalog, shape: bool = False) -> list[Finding]:
    if not isinstance(task, dict):
        return [(where, "a task is a mapping with name, uses and with")]
    if shape:  # verify entries are free-form until here
        found = settings_errors(TaskDef, task, where)
        if found:
            return found
    uses = task.get("uses")
    model = catalog.action_settings(str(uses))
    if model is None:
        return [
            (
                (*where, "uses"),
                f"unknown action kind '{uses}': use one of {', '.join(catalog.action_names())}",
            )
        ]
    settings = task.get("with") or {}
    out = settings_errors(model, settings, (*where, "with"))
    for sub, text in strings_in(settings, (*where, "with")):
        try:
            check_shape(text)
        except TemplateError as exc:
            out.append((sub, str(exc)) if exc.offset is None else (sub, str(exc), exc.offset))
    return out


def check_tasks(entries: list[Any], path: Path, catalog: Catalog) -> list[Finding]:
    return [f for i, t in enumerate(entries) for f in check_task(t, (*path, i), catalog)]


def check_policy_body(
    body: dict[str, Any],
    path: Path,
    catalog: Catalog,
    environments: Collection[str] | None = None,
) -> list[Finding]:
    out: list[Finding] = []
    for i, gate in enumerate(body.get("gates") or []):
        out.extend(check_gate(gate, (*path, "gates", i), catalog, environments))
    for i, step in enumerate((body.get("workflow") or {}).get("steps") or []):
        out.extend(
            check_tasks(step.get("tasks") or [], (*path, "workflow", "steps", i, "tasks"), catalog)
        )
    for i, entry in enumerate(body.get("verify") or []):
        where = (*path, "verify", i)
        if isinstance(entry, dict) and "uses" in entry:
            out.extend(check_task(entry, where, catalog, shape=True))
        else:
            out.extend(check_gate(entry, where, catalog, environments))
    hooks = body.get("hooks") or {}
    for hook in ("onStart", "onSuccess", "onFail"):
        out.extend(check_tasks(hooks.get(hook) or [], (*path, "hooks", hook), catalog))
    return out
