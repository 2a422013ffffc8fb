"""The `conveyor` command for definitions: apply, get, schema, flow show, policy explain,
and what a bad definition or an unknown kind answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conveyor.cli.errors import exit_code
from conveyor.errors import ConveyorError
from tests.cli.helpers import (
    BAD_ENV,
    ENVS,
    Cli,
    conveyor,
    lines_of,
    write_defs,
    yaml_docs,
)
from tests.conftest import BASE


def test_apply_creates_then_is_unchanged_then_configures(tmp_path: Path, cli: Cli) -> None:
    defs = write_defs(tmp_path)
    first = conveyor(tmp_path, "apply", "-f", str(defs))
    assert first.returncode == 0, first.stderr
    expected = [
        "Product/shop",
        *(f"Environment/{e}" for e in ENVS),
        "PromotionFlow/main",
        "PromotionPolicy/all",
        "PromotionPolicy/production",
    ]
    assert sorted(lines_of(first.stdout)) == sorted(f"{r} created" for r in expected)

    again = cli("apply", "-f", str(defs))
    assert sorted(lines_of(again)) == sorted(f"{r} unchanged" for r in expected)

    (defs / "base.yaml").write_text(BASE.replace("overlay: overlays/prod}", "overlay: ov/prod}"))
    changed = cli("apply", "-f", str(defs))
    assert "Environment/prod configured" in lines_of(changed)
    assert sorted(line for line in lines_of(changed) if not line.endswith("unchanged")) == [
        "Environment/prod configured"
    ]

    (doc,) = yaml_docs(cli("get", "env", "prod", "-o", "yaml"))
    assert isinstance(doc, dict)
    assert doc["status"]["revision"] == 2
    assert doc["spec"]["settings"] == {"overlay": "ov/prod"}
    assert "revision: 2" in cli("get", "env", "prod", "-o", "yaml")
    (dev,) = yaml_docs(cli("get", "env", "dev", "-o", "yaml"))
    assert isinstance(dev, dict) and dev["status"]["revision"] == 1


def test_get_lists_and_shows_definitions(tmp_path: Path, cli: Cli) -> None:
    cli("apply", "-f", str(write_defs(tmp_path)))

    flows = cli("get", "flows")
    assert [line.split() for line in lines_of(flows)] == [
        ["kind", "name", "revision", "summary"],
        ["PromotionFlow", "main", "1", "version", "1.00"],
    ]
    envs = cli("get", "env")
    assert sorted(line.split()[1] for line in lines_of(envs)[1:]) == sorted(ENVS)
    policies = cli("get", "policy")
    assert "priority 10" in policies and "production" in policies

    doc = json.loads(cli("get", "PromotionFlow", "main", "-o", "json"))
    assert doc["kind"] == "PromotionFlow"
    assert doc["metadata"] == {"name": "main"}
    assert doc["status"]["revision"] == 1 and doc["status"]["appliedAt"].endswith("Z")
    assert doc["spec"]["product"] == "shop"
    assert [n["name"] for n in doc["spec"]["environments"]] == [
        "qa",
        "prod",
        "prod-eu",
        "prod-asia",
    ]

    stream = yaml_docs(cli("get", "env", "-o", "yaml"))
    assert sorted(d["metadata"]["name"] for d in stream if isinstance(d, dict)) == sorted(ENVS)


def test_schema_prints_json_schemas(cli: Cli) -> None:
    one = json.loads(cli("schema", "PromotionFlow"))
    assert one["title"] == "PromotionFlow"
    assert "spec" in one["properties"]
    assert one["properties"]["kind"] == {"const": "PromotionFlow"}

    every = json.loads(cli("schema"))
    kinds = ["Product", "Environment", "PromotionFlow", "PromotionPolicy", "NotificationSink"]
    assert every["properties"]["kind"] == {"enum": kinds}
    assert [c["if"]["properties"]["kind"]["const"] for c in every["allOf"]] == kinds
    for kind in kinds:
        assert "spec" in every["definitions"][kind]["properties"]


def test_unknown_field_exits_2_names_file_line_field_and_applies_nothing(
    tmp_path: Path, cli: Cli
) -> None:
    defs = tmp_path / "defs"
    defs.mkdir()
    (defs / "base.yaml").write_text(BASE)  # valid, but must not be applied either
    (defs / "file.yaml").write_text(BAD_ENV)

    result = conveyor(tmp_path, "apply", "-f", str(defs))
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "file.yaml:6" in result.stderr
    assert "colour" in result.stderr
    assert "Traceback" not in result.stderr
    assert "created" not in result.stdout

    envs = cli("get", "env")
    assert lines_of(envs)[1:] == []
    assert "shop" not in cli("get", "product")


def test_unknown_kind_is_a_usage_error_not_a_traceback(tmp_path: Path) -> None:
    result = conveyor(tmp_path, "get", "bogus", process=True)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, result.stderr
    assert "unknown kind 'bogus'" in result.stderr


@pytest.mark.parametrize(
    "args",
    [["get", "bogus"], ["schema", "bogus"], ["delete", "bogus", "x"]],
    ids=["get", "schema", "delete"],
)
def test_unknown_kind_raises_a_definition_error(cli: Cli, args: list[str]) -> None:
    exc = cli.error(*args)
    assert isinstance(exc, ConveyorError), repr(exc)  # else main() prints a traceback, exit 1
    assert exit_code(exc) == 2
    assert "unknown kind 'bogus'" in str(exc)


def test_flow_show_formats(tmp_path: Path, cli: Cli) -> None:
    cli("apply", "-f", str(write_defs(tmp_path)))

    text = cli("flow", "show", "main")
    assert text == cli("flow", "show", "main", "--format", "text")
    assert text.splitlines() == [
        "main v1.00 (product shop)",
        "dev  (trigger)",
        " └─> qa",
        "      ├─> prod",
        "      ├─> prod-eu",
        "      └─> prod-asia",
        "",
    ]

    mermaid = cli("flow", "show", "main", "--format", "mermaid").splitlines()
    assert mermaid[0] == "flowchart LR"
    for edge in ("dev --> qa", "qa --> prod", "qa --> prod_eu", "qa --> prod_asia"):
        assert f"    {edge}" in mermaid
    assert '    prod_eu["prod-eu"]' in mermaid

    dot = cli("flow", "show", "main", "--format", "dot")
    assert dot.startswith('digraph "main" {')
    for edge in ('"dev" -> "qa";', '"qa" -> "prod";', '"qa" -> "prod-eu";', '"qa" -> "prod-asia";'):
        assert edge in dot
    assert dot.rstrip().endswith("}")


def test_flow_show_unknown_format_is_a_usage_error(tmp_path: Path, cli: Cli) -> None:
    cli("apply", "-f", str(write_defs(tmp_path)))
    result = conveyor(tmp_path, "flow", "show", "main", "--format", "png")
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, result.stderr
    assert "unknown format 'png'" in result.stderr


def test_policy_explain_names_where_each_field_came_from(tmp_path: Path, cli: Cli) -> None:
    cli("apply", "-f", str(write_defs(tmp_path)))

    prod = cli("policy", "explain", "shop", "prod")
    assert lines_of(prod)[0] == (
        "policies applied, in order: PromotionPolicy/all, PromotionPolicy/production"
    )
    assert "workflow  (from PromotionPolicy/all)" in prod
    assert "gates  (from PromotionPolicy/production)" in prod
    assert "qa-signoff" in prod

    dev = cli("policy", "explain", "shop", "dev")
    assert lines_of(dev)[0] == "policies applied, in order: PromotionPolicy/all"
    assert "workflow  (from PromotionPolicy/all)" in dev
    assert "PromotionPolicy/production" not in dev
