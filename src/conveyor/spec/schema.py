"""JSON Schema of every kind, for editors (`conveyor schema`)."""

from __future__ import annotations

from typing import Any

from conveyor.model.definitions import API_VERSION, KINDS, Metadata


def document_schema(kind: str) -> dict[str, Any]:
    spec = KINDS[kind].model_json_schema(by_alias=True)
    defs = spec.pop("$defs", {})
    meta = Metadata.model_json_schema()
    defs.update(meta.pop("$defs", {}))
    defs["Metadata"] = meta
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": kind,
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": API_VERSION},
            "kind": {"const": kind},
            "metadata": {"$ref": "#/$defs/Metadata"},
            "spec": spec,
        },
        "$defs": defs,
    }
