"""`conveyor schema`: typed from the models that validate, defaults valid against it, and
every definition the demo writes or the docs show valid against it (a block meant to be
wrong, or a sketch with `...`, says so with `<!-- invalid example -->` or `<!-- sketch -->`
on the line before it)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator
from ruamel.yaml import YAML

from conveyor.cli.demo import SCHEMA, write_workspace
from conveyor.engine.registry import default_registry
from conveyor.spec.schema import all_kinds_schema, document_schema

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"(<!-- (?:invalid example|sketch) -->\n)?```(?:yaml)?\n(.*?)```", re.S)


@pytest.fixture(scope="module")
def validator() -> Draft7Validator:
    schema = all_kinds_schema(default_registry())
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def errors(validator: Draft7Validator, document: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def documents(text: str) -> list[Any]:
    return [d for d in YAML(typ="safe", pure=True).load_all(text) if d is not None]


def _defaults(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if isinstance(node, dict):
        if "default" in node:
            found.append((path, node))
        for key, value in node.items():
            found += _defaults(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _defaults(value, f"{path}/{i}")
    return found


def test_every_default_is_valid_against_its_own_schema() -> None:
    schema = all_kinds_schema(default_registry())
    defaults = _defaults(schema["definitions"])
    assert len(defaults) > 20
    for path, prop in defaults:
        own = {k: v for k, v in prop.items() if k != "default"}
        resolver_schema = {**own, "definitions": schema["definitions"]}
        problems = list(Draft7Validator(resolver_schema).iter_errors(prop["default"]))
        assert not problems, (path, prop["default"], problems[0].message)
    backoff = schema["definitions"]["TaskDef"]["properties"]["backoff"]
    assert backoff["default"] == "1s"


def test_gates_with_and_verify_are_typed(validator: Draft7Validator) -> None:
    def policy(spec: dict[str, Any]) -> dict[str, Any]:
        meta = {"name": "p"}
        return {
            "apiVersion": "conveyor.dev/v1",
            "kind": "PromotionPolicy",
            "metadata": meta,
            "spec": spec,
        }

    task = {"name": "t", "uses": "run", "with": {"args": ["true"]}}
    good = policy(
        {
            "gates": [{"timed": {"duration": "2h", "in": "qa"}}],
            "workflow": {"steps": [{"name": "deploy", "tasks": [task]}]},
            "verify": [{"releaseLabel": {"key": "qa", "values": ["ok"]}}, task],
        }
    )
    assert errors(validator, good) == []
    assert errors(validator, {**good, "status": {"revision": 3}}) == []
    wrong_with = {**task, "with": {"argz": ["true"]}}
    bad = {
        "gates": [{"timed": {"duration": "2h", "nope": 1}}, {"nogate": {}}],
        "workflow": {"steps": [{"name": "deploy", "tasks": [wrong_with]}]},
        "verify": [{"uses": "no-such-action", "name": "x"}],
    }
    found = " | ".join(errors(validator, policy(bad)))
    for expected in ("nope", "nogate", "argz", "no-such-action"):
        assert expected in found, (expected, found)


def test_one_kind_has_its_own_schema() -> None:
    flow = document_schema("PromotionFlow", default_registry())
    assert flow["properties"]["kind"] == {"const": "PromotionFlow"}
    Draft7Validator.check_schema(flow)


def test_the_demo_files_carry_the_modeline_and_are_valid(
    tmp_path: Path, validator: Draft7Validator
) -> None:
    defs = write_workspace(tmp_path)
    assert (defs / SCHEMA).is_file()
    files = sorted(defs.glob("*.yaml"))
    assert len(files) == 4
    for f in files:
        text = f.read_text()
        assert text.startswith(f"# yaml-language-server: $schema={SCHEMA}\n"), f
        for document in documents(text):
            assert errors(validator, document) == [], (f.name, document.get("metadata"))


@pytest.mark.parametrize("page", ["README.md", "docs/reference.md"])
def test_every_definition_example_in_the_docs_is_valid(
    page: str, validator: Draft7Validator
) -> None:
    text = (ROOT / page).read_text()
    checked = 0
    for match in FENCE.finditer(text):
        invalid, block = match.group(1), match.group(2)
        if "apiVersion: conveyor.dev/v1" not in block or invalid:
            continue
        line = text.count("\n", 0, match.start()) + 1
        try:
            found = documents(block)
        except Exception as exc:  # a fragment with `...` is not a definition example
            pytest.fail(f"{page}:{line}: not YAML ({exc}); mark it <!-- invalid example -->")
        for document in found:
            if not isinstance(document, dict) or "kind" not in document:
                continue
            assert errors(validator, document) == [], f"{page}:{line}"
            checked += 1
    assert checked >= 1
