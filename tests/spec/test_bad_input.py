"""Bad definitions are refused with file, line and field, and nothing of the batch is stored."""

from __future__ import annotations

import itertools
import textwrap
from typing import Any

import pytest

from conveyor.engine.service import Conveyor
from conveyor.errors import Conflict, DefinitionError, Problem
from conveyor.spec import load_text
from tests.conftest import BASE, DIGEST, apply_yaml

FILE = "defs.yaml"

# A valid document put in front of every bad batch: it must not be stored either.
STAGING = """\
apiVersion: conveyor.dev/v1
kind: Environment
metadata: {name: staging}
spec: {type: non-production}
---
"""

FLOW_HEAD = """\
apiVersion: conveyor.dev/v1
kind: PromotionFlow
metadata: {name: main}
spec:
  version: "1"
  product: PRODUCT
  triggerEnvironment: dev
"""

POLICY_HEAD = """\
apiVersion: conveyor.dev/v1
kind: PromotionPolicy
metadata: {name: checks}
spec:
"""


def block(text: str, indent: int) -> str:
    """A dedented YAML fragment, indented to sit under a key at `indent` spaces."""
    return textwrap.indent(textwrap.dedent(text).lstrip("\n"), " " * indent)


def flow(nodes: str, product: str = "shop", extra: str = "") -> str:
    """A flow document whose `environments:` list is `nodes`, and `extra` spec fields."""
    return (
        FLOW_HEAD.replace("PRODUCT", product)
        + "  environments:\n"
        + block(nodes, 4)
        + (block(extra, 2) if extra else "")
    )


def policy(spec: str) -> str:
    return POLICY_HEAD + block(spec, 2)


def doc(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def line_of(text: str, marker: str, nth: int = 1) -> int:
    """The 1-based line of the `nth` line of `text` that contains `marker`."""
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if marker in line]
    assert len(hits) >= nth, f"{marker!r} occurs {len(hits)} times in the test text"
    if nth == 1:
        assert len(hits) == 1, f"{marker!r} is ambiguous in the test text: lines {hits}"
    return hits[nth - 1]


def stored(cv: Conveyor) -> dict[str, list[tuple[str, int]]]:
    return {
        kind: sorted((c.name, c.revision) for c in cv.get(kind))
        for kind in ("Product", "Environment", "PromotionFlow", "PromotionPolicy")
    }


def refused(cv: Conveyor, text: str) -> list[Problem]:
    """Apply `text`, expect a DefinitionError, and check nothing was applied."""
    before = stored(cv)
    with pytest.raises(DefinitionError) as info:
        cv.apply(docs=load_text(text, FILE))
    assert stored(cv) == before
    assert "staging" not in {c.name for c in cv.get("Environment")}
    assert info.value.problems, "a DefinitionError lists its problems"
    return info.value.problems


def problem_at(problems: list[Problem], field: str) -> Problem:
    found = [p for p in problems if p.field == field]
    assert found, f"no problem at {field}; got {[(p.field, p.message) for p in problems]}"
    return found[0]


def check(
    cv: Conveyor, text: str, field: str, marker: str, *contains: str, nth: int = 1
) -> Problem:
    problem = problem_at(refused(cv, text), field)
    assert problem.file == FILE
    assert problem.line == line_of(text, marker, nth), problem
    for word in contains:
        assert word in problem.message, problem
    return problem


@pytest.fixture
def base(cv: Conveyor) -> Conveyor:
    apply_yaml(cv, BASE, "base.yaml")
    return cv


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
    before = stored(base)
    with pytest.raises(DefinitionError) as info:
        base.apply(docs=load_text(text, FILE))
    (problem,) = info.value.problems
    assert problem.file == FILE
    assert problem.line == line_of(text, "labels: {tier: x}")
    assert "YAML" in problem.message
    assert stored(base) == before


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


# --- gates, thresholds, templates, plugins -------------------------------------------


def test_timed_gate_over_31_days(base: Conveyor) -> None:
    text = STAGING + policy("""
        gates:
          - timed: {duration: 32d}
    """)
    check(base, text, "spec.gates[0].timed.duration", "32d", "32d", "31d")


def test_timed_gate_with_a_duration_too_large_to_represent(base: Conveyor) -> None:
    text = STAGING + policy("""
        gates:
          - timed:
              duration: 9999999999d
    """)
    check(base, text, "spec.gates[0].timed.duration", "9999999999d")


def test_task_timeout_over_one_day(base: Conveyor) -> None:
    text = STAGING + policy("""
        workflow:
          steps:
            - name: deploy
              tasks:
                - name: push
                  uses: run
                  timeout: 2d
                  with: {args: [echo]}
    """)
    check(base, text, "spec.workflow.steps[0].tasks[0].timeout", "timeout: 2d", "2d", "1d")


def test_timed_gate_at_31_days_is_accepted(base: Conveyor) -> None:
    text = policy("""
        gates:
          - timed: {duration: 31d}
    """)
    base.apply(docs=load_text(text, FILE))
    assert [c.name for c in base.get("PromotionPolicy")] == ["checks"]


def test_malformed_duration_in_a_node_policy(base: Conveyor) -> None:
    text = STAGING + flow("""
        - name: qa
          dependsOn: [dev]
          policy:
            verify:
              - timed:
                  duration: 2 hours
    """)
    field = "spec.environments[0].policy.verify[0].timed.duration"
    check(base, text, field, "2 hours", "2 hours")


@pytest.mark.parametrize(
    ("field", "value"), [("healthyThreshold", "1.5"), ("unhealthyThreshold", "-0.1")]
)
def test_threshold_outside_zero_one(base: Conveyor, field: str, value: str) -> None:
    text = STAGING + doc(f"""
        apiVersion: conveyor.dev/v1
        kind: Product
        metadata: {{name: cart}}
        spec:
          rolloutCriteria: {{{field}: {value}}}
    """)
    check(base, text, f"spec.rolloutCriteria.{field}", "rolloutCriteria")
    assert [c.name for c in base.get("Product")] == ["shop"]


def test_thresholds_at_the_bounds_are_accepted(cv: Conveyor) -> None:
    text = """
        apiVersion: conveyor.dev/v1
        kind: Product
        metadata: {name: cart}
        spec:
          rolloutCriteria: {healthyThreshold: 1.0, unhealthyThreshold: 0.0}
    """
    apply_yaml(cv, text)
    (product,) = cv.get("Product")
    assert product.spec.rolloutCriteria.healthyThreshold == 1.0
    assert product.spec.rolloutCriteria.unhealthyThreshold == 0.0


def test_template_naming_unknown_values(base: Conveyor) -> None:
    text = STAGING + policy("""
        workflow:
          steps:
            - name: deploy
              tasks:
                - name: push
                  uses: run
                  with:
                    args:
                      - echo
                      - "v${{ release.nme }}"
                      - "${{ relase.version }}"
    """)
    problems = refused(base, text)
    where = "spec.workflow.steps[0].tasks[0].with.args"
    first = problem_at(problems, f"{where}[1]")
    second = problem_at(problems, f"{where}[2]")
    assert first.line == line_of(text, "release.nme")
    assert second.line == line_of(text, "relase.version")
    assert "release.nme" in first.message
    assert "relase.version" in second.message
    # The hint names what does exist.
    assert "version" in first.message
    assert "release" in second.message
    assert first.file == second.file == FILE


def test_template_naming_a_group(base: Conveyor) -> None:
    text = STAGING + policy("""
        hooks:
          onStart:
            - name: note
              uses: run
              with: {args: [echo, "${{ release.labels }}"]}
    """)
    check(base, text, "spec.hooks.onStart[0].with.args[1]", "release.labels", "group")


def test_template_naming_a_known_value_is_accepted(base: Conveyor) -> None:
    text = policy("""
        verify:
          - name: note
            uses: run
            with: {args: [echo, "${{ artifacts.web.digest }} ${{ release.labels.team }}"]}
    """)
    base.apply(docs=load_text(text, FILE))
    assert [c.name for c in base.get("PromotionPolicy")] == ["checks"]


def test_unknown_action_kind(base: Conveyor) -> None:
    text = STAGING + policy("""
        workflow:
          steps:
            - name: deploy
              tasks:
                - name: push
                  uses: nope
    """)
    check(base, text, "spec.workflow.steps[0].tasks[0].uses", "uses: nope", "nope", "run")


def test_bad_action_settings(base: Conveyor) -> None:
    text = STAGING + policy("""
        workflow:
          steps:
            - name: deploy
              tasks:
                - name: push
                  uses: run
                  with:
                    argz: [echo]
    """)
    check(base, text, "spec.workflow.steps[0].tasks[0].with.argz", "argz", "argz")


def test_unknown_gate_kind(base: Conveyor) -> None:
    text = STAGING + policy("""
        gates:
          - timed: {duration: 1h}
          - approval: {count: 2}
    """)
    check(base, text, "spec.gates[1].approval", "approval", "approval", "timed")


def test_gate_written_with_two_kinds(base: Conveyor) -> None:
    text = STAGING + policy("""
        gates:
          - {timed: {duration: 1h}, releaseLabel: {key: qa}}
    """)
    check(base, text, "spec.gates[0]", "releaseLabel")


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
