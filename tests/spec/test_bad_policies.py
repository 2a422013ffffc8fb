"""Bad gates, thresholds, templates and plugin settings are refused with file, line and
field, and nothing of the batch is stored."""

from __future__ import annotations

import pytest

from conveyor.engine.service import Conveyor
from conveyor.spec import load_text
from tests.conftest import apply_yaml
from tests.spec.helpers import FILE, STAGING, check, doc, flow, line_of, policy, problem_at, refused

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
          - aproval: {count: 2}
    """)
    check(base, text, "spec.gates[1].aproval", "aproval", "approval", "timed")


def test_gate_written_with_two_kinds(base: Conveyor) -> None:
    text = STAGING + policy("""
        gates:
          - {timed: {duration: 1h}, releaseLabel: {key: qa}}
    """)
    check(base, text, "spec.gates[0]", "releaseLabel")
