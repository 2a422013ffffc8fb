"""Definitions that used to be stored anyway, or took too long to refuse, are refused at
apply in one round: every problem of the batch at once, each at its line (and column)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conveyor.engine.service import Conveyor
from conveyor.errors import DefinitionError
from conveyor.model.release import pin_artifact
from conveyor.spec import load_text
from conveyor.spec.loader import MAX_NODES, load_paths
from tests.conftest import DIGEST
from tests.spec.helpers import FILE, STAGING, check, doc, flow, line_of, policy, refused


def test_a_gate_naming_an_environment_that_does_not_exist(base: Conveyor) -> None:
    text = STAGING + policy("""
        gates:
          - timed: {duration: 1h, in: qa-typo}
          - canary:
              entities: {environments: [qa, prod-typo]}
              promoteWhenHealthy: {entities: 1, soak: 1h}
    """)
    problems = refused(base, text)
    assert [p.field for p in problems] == [
        "spec.gates[0].timed.in",
        "spec.gates[1].canary.entities.environments[1]",
    ]
    assert problems[0].line == line_of(text, "qa-typo")
    assert problems[1].line == line_of(text, "prod-typo")
    assert "environment 'qa-typo' is not defined: use one of dev, prod" in problems[0].message


def test_a_gate_may_name_an_environment_of_the_same_apply(base: Conveyor) -> None:
    text = STAGING + policy("""
        gates:
          - timed: {duration: 1h, in: staging}
    """)
    applied = base.apply(docs=load_text(text, FILE))
    assert [d.ref for d, _ in applied] == ["Environment/staging", "PromotionPolicy/checks"]


@pytest.mark.parametrize(
    ("value", "column_of", "says"),
    [
        ('"v${{ release.version"', "${{", "never closed"),
        ('"${{ release.version }} ${{ release.nope }}"', "${{ release.nope", "unknown name"),
    ],
)
def test_templates_are_parsed_at_apply_with_line_and_column(
    base: Conveyor, value: str, column_of: str, says: str
) -> None:
    text = STAGING + policy(f"""
        workflow:
          steps:
            - name: deploy
              tasks:
                - name: say
                  uses: run
                  with:
                    args: [echo, {value}]
    """)
    problem = check(base, text, "spec.workflow.steps[0].tasks[0].with.args[1]", value, says)
    line = text.splitlines()[problem.line - 1]
    assert problem.column == line.index(column_of) + 1
    assert f"{FILE}:{problem.line}:{problem.column}" in str(problem)


def test_nested_aliases_are_refused_quickly() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    bomb = "\n".join(lines) + "\n"
    start = time.perf_counter()
    with pytest.raises(DefinitionError) as info:
        load_text(bomb, FILE)
    assert time.perf_counter() - start < 1.0
    (problem,) = info.value.problems
    assert f"more than {MAX_NODES:,} values" in problem.message
    assert (problem.line, problem.column) == (1, 1)


def test_a_few_aliases_are_fine() -> None:
    text = doc("""
        apiVersion: conveyor.dev/v1
        kind: Environment
        metadata: {name: staging, labels: &l {tier: x}}
        spec: {type: non-production, settings: *l}
    """)
    (loaded,) = load_text(text, FILE)
    assert loaded.data["spec"]["settings"] == {"tier": "x"}


@pytest.mark.parametrize("tag", ["!!python/object:os.system", "!vault", "!!binary"])
def test_unknown_yaml_tags_are_refused_at_their_line_and_column(tag: str) -> None:
    text = STAGING + doc(f"""
        apiVersion: conveyor.dev/v1
        kind: Environment
        metadata: {{name: other}}
        spec: {{type: {tag} production}}
    """)
    with pytest.raises(DefinitionError) as info:
        load_text(text, FILE)
    (problem,) = info.value.problems
    assert f"unknown YAML tag '{tag.replace('!!', 'tag:yaml.org,2002:')}'" in problem.message
    line = line_of(text, tag)
    assert (problem.line, problem.column) == (line, text.splitlines()[line - 1].index(tag) + 1)


def test_binary_input_is_reported_at_line_and_column(tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text(STAGING)
    (tmp_path / "bin.yaml").write_bytes(b"apiVersion: v1\nkind: \xff\xfe\n")
    (tmp_path / "nul.yaml").write_bytes(b"apiVersion: v1\nkind: a\x00b\n")
    with pytest.raises(DefinitionError) as info:
        load_paths([tmp_path])
    by_file = {Path(p.file).name: p for p in info.value.problems}
    assert (by_file["bin.yaml"].line, by_file["bin.yaml"].column) == (2, 7)
    assert "not UTF-8" in by_file["bin.yaml"].message
    assert (by_file["nul.yaml"].line, by_file["nul.yaml"].column) == (2, 8)
    assert "position" not in str(by_file["nul.yaml"])


def test_every_problem_of_a_batch_in_one_round(base: Conveyor) -> None:
    """A schema error in one document does not hide a reference error in another, and a
    document with errors of its own is not reported as missing by the others."""
    text = doc("""
            apiVersion: conveyor.dev/v1
            kind: Environment
            metadata: {name: staging}
            spec: {type: non-production, colour: blue}
            ---
        """) + flow("""
            - {name: qa, dependsOn: [dev]}
            - {name: staging, dependsOn: [qa]}
            - {name: nowhere, dependsOn: [qa]}
        """)
    problems = refused(base, text)
    assert [p.field for p in problems] == ["spec.colour", "spec.environments[2].name"]
    assert problems[1].line == line_of(text, "name: nowhere")


def test_image_repositories_are_checked_and_floating_pins_refused(base: Conveyor) -> None:
    text = doc("""
        apiVersion: conveyor.dev/v1
        kind: Product
        metadata: {name: cart}
        spec:
          artifacts:
            - {name: web, type: image, repository: Registry.local/Web_App}
    """)
    check(base, text, "spec.artifacts[0]", "Registry.local/Web_App", "malformed path")
    with pytest.raises(ValueError, match="malformed"):
        pin_artifact("web", f"REG/Web@{DIGEST}", None)
    for floating in ("chart@latest", "chart@*", "chart@^1.2", "chart@>=1.0", "chart@stable"):
        with pytest.raises(ValueError, match="not an exact version"):
            pin_artifact("chart", floating, _chart())
    assert pin_artifact("chart", "chart@1.4.2", _chart()).version == "1.4.2"


def _chart() -> object:
    from conveyor.model.definitions import ArtifactDef

    return ArtifactDef(name="chart", type="chart")


def test_a_policy_selecting_an_unknown_environment_and_an_empty_channel(
    base: Conveyor,
) -> None:
    selecting = STAGING + policy("""
        selector:
          environments: {names: [prod, prdo]}
        gates:
          - timed: {duration: 1h}
    """)
    check(base, selecting, "spec.selector.environments.names[1]", "prdo", "'prdo' is not defined")
    channel = flow("""
        - {name: qa, dependsOn: [dev]}
        - {name: eu, channel: {labels: {region: mars}}, dependsOn: [qa]}
    """)
    check(
        base, STAGING + channel, "spec.environments[1].channel.labels", "mars", "channel is empty"
    )


def test_a_name_given_twice_is_reported_at_the_second_item(base: Conveyor) -> None:
    text = STAGING + policy("""
        workflow:
          steps:
            - name: deploy
              tasks:
                - {name: web, uses: run, with: {args: ["true"]}}
                - {name: api, uses: run, with: {args: ["true"]}}
                - {name: web, uses: run, with: {args: ["false"]}}
    """)
    check(
        base,
        text,
        "spec.workflow.steps[0].tasks[2].name",
        '"false"',
        "task 'web' appears twice",
    )


def test_a_flow_with_a_schema_error_still_reports_its_graph_errors(base: Conveyor) -> None:
    text = STAGING + flow(
        """
        - {name: qa, dependsOn: [dev]}
        - {name: nowhere, dependsOn: [qa]}
        - {name: prod, dependsOn: [qa], colour: red}
        """,
    )
    problems = refused(base, text)
    assert [p.field for p in problems] == [
        "spec.environments[2].colour",
        "spec.environments[1].name",
    ]
    assert "unknown field 'colour'" in problems[0].message
    assert problems[1].line == line_of(text, "name: nowhere")


@pytest.mark.parametrize(
    ("uses", "settings", "instead"),
    [
        (
            "git.tag",
            "{repo: 'https://bot:s3cr3t-t0ken@git.example.com/ops.git', tag: v1}",
            "tokenEnv",
        ),
        ("http", "{url: 'https://bot:s3cr3t-t0ken@api.example.com/sync'}", "Authorization"),
    ],
)
def test_a_url_with_a_password_is_refused_without_repeating_it(
    base: Conveyor, uses: str, settings: str, instead: str
) -> None:
    text = STAGING + policy(f"""
        workflow:
          steps:
            - name: deploy
              tasks:
                - {{name: t, uses: {uses}, with: {settings}}}
    """)
    (problem,) = refused(base, text)
    assert "has a password or token in it" in problem.message and instead in problem.message
    assert "s3cr3t-t0ken" not in str(problem) and "bot:***@" in problem.message
