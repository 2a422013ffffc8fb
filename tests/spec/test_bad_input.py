"""Bad definitions are refused with file, line and field, and nothing of the batch is stored."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from conveyor.engine.service import Conveyor
from conveyor.errors import Conflict, DefinitionError
from conveyor.spec import load_text
from tests.conftest import BASE, DIGEST
from tests.spec.helpers import (
    FILE,
    STAGING,
    check,
    doc,
    flow,
    line_of,
    policy,
    refused,
    stored,
)

# --- YAML and the envelope -----------------------------------------------------------


def test_malformed_yaml_names_file_and_line(base: Conveyor) -> None:
    text = STAGING + doc("""
        apiVersion: conveyor.dev/v1
        kind: Environment
        metadata:
          name: broken
           labels: {tier: x}
        spec: {}
    """)
    (problem,) = refused(base, text)
    assert problem.file == FILE
    assert problem.line == line_of(text, "labels: {tier: x}")
    assert "YAML" in problem.message


def test_malformed_yaml_unclosed_flow_mapping(cv: Conveyor) -> None:
    text = "apiVersion: conveyor.dev/v1\nkind: Product\nmetadata: {name: shop\n"
    with pytest.raises(DefinitionError) as info:
        load_text(text, FILE)
    (problem,) = info.value.problems
    assert problem.file == FILE
    assert problem.line is not None
    # Reported at or after the line where the mapping was opened.
    assert problem.line >= line_of(text, "metadata: {name: shop")
    assert cv.get("Product") == []


def test_document_that_is_not_a_mapping() -> None:
    text = STAGING + "- just\n- a list\n"
    with pytest.raises(DefinitionError) as info:
        load_text(text, FILE)
    (problem,) = info.value.problems
    assert problem.file == FILE
    assert problem.line == line_of(text, "- just")


def test_unknown_kind(base: Conveyor) -> None:
    text = STAGING + "apiVersion: conveyor.dev/v1\nkind: Widget\nmetadata: {name: w}\nspec: {}\n"
    check(base, text, "kind", "kind: Widget", "Widget", "PromotionFlow")


def test_wrong_api_version(base: Conveyor) -> None:
    text = STAGING + "apiVersion: conveyor.dev/v2\nkind: Product\nmetadata: {name: w}\nspec: {}\n"
    check(base, text, "apiVersion", "conveyor.dev/v2")


def test_invalid_name(base: Conveyor) -> None:
    text = STAGING + "apiVersion: conveyor.dev/v1\nkind: Product\nmetadata:\n  name: Not_OK\n"
    check(base, text, "metadata.name", "name: Not_OK")


def test_unknown_field_in_spec(base: Conveyor) -> None:
    text = STAGING + doc("""
        apiVersion: conveyor.dev/v1
        kind: Environment
        metadata: {name: perf}
        spec:
          type: production
          colour: red
    """)
    problem = check(base, text, "spec.colour", "colour: red", "colour")
    assert problem.resource == "Environment/perf"


def test_unknown_field_in_a_nested_task(base: Conveyor) -> None:
    text = STAGING + policy("""
        workflow:
          steps:
            - name: deploy
              tasks:
                - name: push
                  uses: run
                  retry: 3
                  with: {args: [echo, hi]}
    """)
    problem = check(base, text, "spec.workflow.steps[0].tasks[0].retry", "retry: 3", "retry")
    assert problem.resource == "PromotionPolicy/checks"


def test_unknown_field_in_a_verify_task(base: Conveyor) -> None:
    text = STAGING + policy("""
        verify:
          - name: smoke
            uses: run
            halt_on_eror: false
            with: {args: [echo, hi]}
    """)
    check(base, text, "spec.verify[0].halt_on_eror", "halt_on_eror", "halt_on_eror")


def test_unknown_field_in_a_flow_hook_task(base: Conveyor) -> None:
    text = STAGING + flow(
        "- {name: qa, dependsOn: [dev]}\n",
        extra="""
            hooks:
              onFail:
                - name: page
                  uses: run
                  wtih: {args: [echo]}
        """,
    )
    check(base, text, "spec.hooks.onFail[0].wtih", "wtih:", "wtih")


# --- flows ---------------------------------------------------------------------------


def _cycle_of(message: str) -> list[str]:
    assert "cycle" in message
    assert " -> " in message
    return message.split("cycle:", 1)[1].strip().split(" -> ")


def test_cycle_in_a_flow(base: Conveyor) -> None:
    text = STAGING + flow("""
        - name: qa
          dependsOn: [dev, prod]
        - name: prod
          dependsOn: [qa]
    """)
    problems = refused(base, text)
    cyc = [p for p in problems if "cycle" in p.message]
    assert len(cyc) == 1, problems
    path = _cycle_of(cyc[0].message)
    assert path[0] == path[-1]
    assert sorted(path[:-1]) == ["prod", "qa"]
    idx = ["qa", "prod"].index(path[0])
    assert cyc[0].field == f"spec.environments[{idx}].dependsOn"
    marker = "dependsOn: [dev, prod]" if path[0] == "qa" else "dependsOn: [qa]"
    assert cyc[0].file == FILE
    assert cyc[0].line == line_of(text, marker)
    assert cyc[0].resource == "PromotionFlow/main"


def test_three_node_cycle_follows_the_edges(base: Conveyor) -> None:
    text = STAGING + flow("""
        - {name: qa, dependsOn: [dev, prod-eu]}
        - {name: prod, dependsOn: [qa]}
        - {name: prod-eu, dependsOn: [prod]}
    """)
    (problem,) = [p for p in refused(base, text) if "cycle" in p.message]
    path = _cycle_of(problem.message)
    assert path[0] == path[-1]
    assert sorted(path[:-1]) == ["prod", "prod-eu", "qa"]
    parents = {"qa": {"dev", "prod-eu"}, "prod": {"qa"}, "prod-eu": {"prod"}}
    for a, b in itertools.pairwise(path):
        # Either direction reads as a cycle, but it must follow real edges.
        assert a in parents[b] or b in parents[a], path
    assert problem.line == line_of(text, f"name: {path[0]},")


def test_unknown_environment_in_depends_on(base: Conveyor) -> None:
    text = STAGING + flow("""
        - {name: qa, dependsOn: [dev]}
        - name: prod
          dependsOn:
            - qa
            - uat
    """)
    check(base, text, "spec.environments[1].dependsOn[1]", "- uat", "uat")


def test_unknown_environment_as_node_name(base: Conveyor) -> None:
    text = STAGING + flow("""
        - {name: qa, dependsOn: [dev]}
        - name: stage
          dependsOn: [qa]
    """)
    check(base, text, "spec.environments[1].name", "name: stage", "stage")


def test_unknown_trigger_environment(base: Conveyor) -> None:
    text = STAGING + flow("- {name: qa, dependsOn: [devel]}\n").replace(
        "triggerEnvironment: dev", "triggerEnvironment: devel"
    )
    check(base, text, "spec.triggerEnvironment", "triggerEnvironment: devel", "devel")


def test_unknown_product_in_a_flow(base: Conveyor) -> None:
    text = STAGING + flow("- {name: qa, dependsOn: [dev]}\n", product="shoppe")
    check(base, text, "spec.product", "product: shoppe", "shoppe")


def test_duplicate_node(base: Conveyor) -> None:
    text = STAGING + flow("""
        - name: qa
          dependsOn: [dev]
        - name: qa
          dependsOn: [dev]
    """)
    check(base, text, "spec.environments[1].name", "- name: qa", "qa", "twice", nth=2)


def test_node_without_depends_on_is_unreachable(base: Conveyor) -> None:
    text = STAGING + flow("""
        - {name: qa, dependsOn: [dev]}
        - name: prod
    """)
    # No dependsOn key exists: the line is that of the node itself.
    check(base, text, "spec.environments[1].dependsOn", "- name: prod", "prod", "dependsOn")


def test_node_depending_on_itself(base: Conveyor) -> None:
    text = STAGING + flow("""
        - name: qa
          dependsOn:
            - dev
            - qa
    """)
    check(base, text, "spec.environments[0].dependsOn[1]", "        - qa", "itself")


# --- releases ------------------------------------------------------------------------


def _web(n: int = 0) -> dict[str, str]:
    digest = DIGEST if n == 0 else "sha256:" + f"{n:064x}"
    return {"web": f"registry.local/web@{digest}"}


def test_version_created_twice(base: Conveyor) -> None:
    base.create_release("shop", "1.0.0", _web())
    with pytest.raises(Conflict):
        base.create_release("shop", "1.0.0", _web())
    with pytest.raises(Conflict):
        base.create_release("shop", "1.0.0", _web(7))
    (release,) = base.list_releases("shop")
    assert release.version == "1.0.0"
    assert release.artifacts["web"]["digest"] == DIGEST


def test_same_version_with_a_v_prefix_is_not_a_second_release(base: Conveyor) -> None:
    # `v1.0.0` parses as the same semantic version as `1.0.0`: it is the same release.
    base.create_release("shop", "1.0.0", _web())
    with pytest.raises((Conflict, DefinitionError)):
        base.create_release("shop", "v1.0.0", _web(7))
    assert len(base.list_releases("shop")) == 1


def test_unpinned_artifact(base: Conveyor) -> None:
    with pytest.raises(DefinitionError) as info:
        base.create_release("shop", "1.0.0", {"web": "registry/web:latest"})
    assert any("digest" in p.message for p in info.value.problems), info.value.problems
    assert "web" in str(info.value)
    assert base.list_releases() == []


def test_missing_artifact(base: Conveyor) -> None:
    with pytest.raises(DefinitionError) as info:
        base.create_release("shop", "1.0.0", {})
    assert "web" in str(info.value)
    assert base.list_releases() == []


def test_undeclared_artifact(base: Conveyor) -> None:
    with pytest.raises(DefinitionError) as info:
        base.create_release("shop", "1.0.0", {**_web(), "api": f"registry.local/api@{DIGEST}"})
    assert "api" in str(info.value)
    assert base.list_releases() == []


@pytest.mark.parametrize("version", ["1.0", "one", "1.0.0.0", "01.2.3", "latest", ""])
def test_non_semver_version(base: Conveyor, version: str) -> None:
    with pytest.raises(DefinitionError) as info:
        base.create_release("shop", version, _web())
    assert any(p.field == "--version" for p in info.value.problems), info.value.problems
    assert "semantic version" in str(info.value)
    assert base.list_releases() == []


# --- all or nothing ------------------------------------------------------------------


def test_batch_is_all_or_nothing_on_an_empty_store(cv: Conveyor) -> None:
    text = BASE + "---\n" + STAGING + flow("- {name: qa, dependsOn: [nowhere]}\n")
    problems = refused(cv, text)
    assert all(p.file == FILE for p in problems)
    assert all(v == [] for v in stored(cv).values())


def test_batch_changing_stored_definitions_is_all_or_nothing(base: Conveyor) -> None:
    changed = doc("""
        apiVersion: conveyor.dev/v1
        kind: Environment
        metadata: {name: qa, labels: {tier: qa, changed: 'yes'}}
        spec: {type: non-production}
        ---
    """)
    before_qa = base.get("Environment", "qa")[0]
    bad = policy("""
        gates:
          - timed: {duration: soon}
    """)
    refused(base, changed + STAGING + bad)
    after_qa = base.get("Environment", "qa")[0]
    assert after_qa.revision == before_qa.revision
    assert after_qa.labels == before_qa.labels == {"tier": "qa"}


def test_every_problem_of_a_batch_is_reported(base: Conveyor) -> None:
    perf = doc("""
        apiVersion: conveyor.dev/v1
        kind: Environment
        metadata: {name: perf}
        spec: {colour: red}
        ---
    """)
    text = STAGING + perf + flow("- {name: qa, dependsOn: [dev]}\n", product="shoppe")
    problems = refused(base, text)
    fields = {(p.resource, p.field) for p in problems}
    assert ("Environment/perf", "spec.colour") in fields
    assert ("PromotionFlow/main", "spec.product") in fields
    lines = {p.field: p.line for p in problems}
    assert lines["spec.colour"] == line_of(text, "colour: red")
    assert lines["spec.product"] == line_of(text, "product: shoppe")


def test_same_definition_twice_in_a_batch(base: Conveyor) -> None:
    text = STAGING + STAGING.replace("non-production", "production").removesuffix("---\n")
    check(base, text, "metadata.name", "name: staging", "twice", nth=2)


def test_a_valid_batch_is_applied_in_one_go(base: Conveyor) -> None:
    text = STAGING + flow("""
        - {name: staging, dependsOn: [dev]}
        - {name: prod, dependsOn: [staging]}
    """)
    outcome: list[tuple[Any, str]] = base.apply(docs=load_text(text, FILE))
    assert sorted((d.ref, what) for d, what in outcome) == [
        ("Environment/staging", "created"),
        ("PromotionFlow/main", "created"),
    ]
    assert "staging" in {c.name for c in base.get("Environment")}
