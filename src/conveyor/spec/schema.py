"""JSON Schema of the definitions, for editors (`conveyor schema`).

Generated from the models that validate definitions, then completed where those models
leave a value open because its shape depends on another field: a task's `with` on its
`uses`, a gate's settings on its kind, a `verify` entry being a task or a gate. Each of
those gets the schema of the plugin's own settings model, so an editor completes and
checks exactly what `apply` accepts. Draft-07 keywords only (`if`/`then`, `oneOf`), which
yaml-language-server (VS Code's YAML extension) supports best.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel, TypeAdapter

from conveyor.model.definitions import API_VERSION, KINDS, Metadata
from conveyor.model.duration import format_duration
from conveyor.model.kinds import KIND_NAMES
from conveyor.model.plugins import Catalog

DRAFT = "http://json-schema.org/draft-07/schema#"
_DURATION = TypeAdapter(timedelta)


def document_schema(kind: str, catalog: Catalog) -> dict[str, Any]:
    """The schema of one kind's documents."""
    defs: dict[str, Any] = {}
    body = _kind(kind, catalog, defs)
    return {"$schema": DRAFT, "title": kind, **body, "definitions": defs}


def all_kinds_schema(catalog: Catalog) -> dict[str, Any]:
    """One schema for any definition document, chosen by its `kind`: what a file of
    several `---` documents of different kinds is checked against."""
    defs: dict[str, Any] = {}
    for kind in KIND_NAMES:
        defs[kind] = _kind(kind, catalog, defs)
    return {
        "$schema": DRAFT,
        "title": "Conveyor definitions",
        "type": "object",
        "required": ["apiVersion", "kind", "metadata"],
        "properties": {"kind": {"enum": list(KIND_NAMES)}},
        "allOf": [
            {
                "if": {"properties": {"kind": {"const": kind}}},
                "then": {"$ref": f"#/definitions/{kind}"},
            }
            for kind in KIND_NAMES
        ],
        "definitions": defs,
    }


def _kind(kind: str, catalog: Catalog, defs: dict[str, Any]) -> dict[str, Any]:
    spec = _model(KINDS[kind], defs)
    defs["Metadata"] = _model(Metadata, defs)
    _plugins(catalog, defs)
    _typed_plugin_fields(spec)
    for definition in list(defs.values()):
        _typed_plugin_fields(definition)
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata"],
        "properties": {
            "apiVersion": {"const": API_VERSION},
            "kind": {"const": kind},
            "metadata": {"$ref": "#/definitions/Metadata"},
            "spec": spec,
            "status": {
                "type": "object",
                "description": "What `conveyor get -o yaml` adds; ignored by apply.",
            },
        },
    }


def _model(model: type[BaseModel], defs: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A model's schema with its nested models moved into `defs` (under `prefix`)."""
    schema = model.model_json_schema(by_alias=True, ref_template=f"#/definitions/{prefix}{{model}}")
    for name, nested in schema.pop("$defs", {}).items():
        defs[prefix + name] = _durations(nested)
    _durations(schema)
    return schema


def _plugins(catalog: Catalog, defs: dict[str, Any]) -> None:
    """`action.NAME` and `gate.KIND` settings, a `Task` per action and one `Gate`."""
    for name in catalog.action_names():
        settings = catalog.action_settings(name)
        assert settings is not None
        defs[f"action.{name}"] = _model(settings, defs, f"action.{name}.")
    gates: dict[str, Any] = {}
    for kind in catalog.gate_kinds():
        settings = catalog.gate_settings(kind)
        assert settings is not None
        defs[f"gate.{kind}"] = _model(settings, defs, f"gate.{kind}.")
        gates[kind] = {"$ref": f"#/definitions/gate.{kind}"}
    defs["Gate"] = {
        "type": "object",
        "description": "One key, the gate's kind, e.g. {timed: {duration: 2h}}",
        "minProperties": 1,
        "maxProperties": 1,
        "additionalProperties": False,
        "properties": gates,
    }
    task = defs.get("TaskDef")
    if task is not None:
        task["properties"]["uses"] = {"enum": catalog.action_names()}
        task["allOf"] = [
            {
                "if": {"properties": {"uses": {"const": name}}},
                "then": {"properties": {"with": {"$ref": f"#/definitions/action.{name}"}}},
            }
            for name in catalog.action_names()
        ]


def _typed_plugin_fields(node: Any) -> None:
    """`gates` lists hold gates; `verify` lists hold tasks or gates."""
    if isinstance(node, list):
        for item in node:
            _typed_plugin_fields(item)
        return
    if not isinstance(node, dict):
        return
    props = node.get("properties")
    if isinstance(props, dict):
        if "gates" in props:
            props["gates"] = _list_of({"$ref": "#/definitions/Gate"})
        if "verify" in props:
            either = {"oneOf": [{"$ref": "#/definitions/TaskDef"}, {"$ref": "#/definitions/Gate"}]}
            props["verify"] = _list_of(either)
    for value in node.values():
        _typed_plugin_fields(value)


def _list_of(items: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [{"type": "array", "items": items}, {"type": "null"}]}


def _durations(node: Any) -> Any:
    """Defaults of durations as people write them (`1s`, `10m`), not as ISO 8601 (`PT1S`),
    which the field's own pattern refuses."""
    if isinstance(node, dict):
        default = node.get("default")
        if isinstance(default, str) and default.startswith("P") and "pattern" in node:
            node["default"] = format_duration(_DURATION.validate_python(default))
        for value in node.values():
            _durations(value)
    elif isinstance(node, list):
        for value in node:
            _durations(value)
    return node
