"""Plans: the ordered stages a merged policy turns into."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from conveyor.model.definitions import Hooks, PolicyBody
from conveyor.model.plan import Plan, build_plan, release_plan, verify_stages


def task(name: str) -> dict[str, Any]:
    return {"name": name, "uses": "run", "with": {"args": ["echo", name]}}


def timed(duration: str) -> dict[str, Any]:
    return {"timed": {"duration": duration}}


def label(key: str) -> dict[str, Any]:
    return {"releaseLabel": {"key": key}}


FULL = PolicyBody.model_validate(
    {
        "gates": [timed("1h"), label("qa")],
        "workflow": {
            "steps": [
                {"name": "migrate", "tasks": [task("db")]},
                {"name": "deploy", "tasks": [task("web"), task("worker")]},
            ]
        },
        "verify": [timed("30m"), task("smoke"), task("load"), label("signoff")],
        "hooks": {
            "onStart": [task("announce")],
            "onSuccess": [task("celebrate")],
            "onFail": [task("page"), task("rollback")],
        },
    }
)


def names(tasks: list[Any]) -> list[str]:
    return [t.name for t in tasks]


def test_full_plan_in_order() -> None:
    plan = build_plan(FULL)
    assert [(s.key, s.phase) for s in plan.stages] == [
        ("entry", "waiting"),
        ("hook.onStart", "running"),
        ("step.migrate", "running"),
        ("step.deploy", "running"),
        ("verify.0", "verifying"),
        ("verify.1", "verifying"),
        ("verify.3", "verifying"),
        ("hook.onSuccess", "verifying"),
    ]
    entry = plan.stages[0]
    assert entry.is_gate and entry.gates == [timed("1h"), label("qa")]
    assert names(plan.stages[1].tasks) == ["announce"]
    assert names(plan.stages[2].tasks) == ["db"]
    assert names(plan.stages[3].tasks) == ["web", "worker"]
    assert plan.stages[4].gates == [timed("30m")] and plan.stages[4].tasks == []
    assert names(plan.stages[5].tasks) == ["smoke", "load"] and plan.stages[5].gates == []
    assert plan.stages[6].gates == [label("signoff")]
    assert names(plan.stages[7].tasks) == ["celebrate"]
    assert names(plan.on_fail) == ["page", "rollback"]


def test_task_stages_are_not_gates() -> None:
    plan = build_plan(FULL)
    assert [s.is_gate for s in plan.stages] == [True, False, False, False, True, False, True, False]


def test_verify_tasks_are_parsed_with_defaults() -> None:
    plan = build_plan(FULL)
    stage = plan.stage("verify.1")
    assert stage is not None
    smoke = stage.tasks[0]
    assert smoke.uses == "run"
    assert smoke.with_ == {"args": ["echo", "smoke"]}
    assert smoke.retries == 0 and smoke.halt_on_error is True


def test_stage_lookup() -> None:
    plan = build_plan(FULL)
    deploy = plan.stage("step.deploy")
    assert deploy is not None and names(deploy.tasks) == ["web", "worker"]
    assert plan.stage("step.nope") is None
    assert plan.stage("verify.2") is None


def test_empty_policy_has_no_stages() -> None:
    plan = build_plan(PolicyBody())
    assert plan.stages == []
    assert plan.on_fail == []


def test_empty_lists_make_no_stages() -> None:
    plan = build_plan(
        PolicyBody.model_validate(
            {"gates": [], "workflow": {"steps": []}, "verify": [], "hooks": {}}
        )
    )
    assert plan.stages == []


def test_only_hooks() -> None:
    plan = build_plan(
        PolicyBody.model_validate(
            {"hooks": {"onSuccess": [task("done")], "onFail": [task("page")]}}
        )
    )
    assert [s.key for s in plan.stages] == ["hook.onSuccess"]
    assert names(plan.on_fail) == ["page"]


def test_build_plan_leaves_the_policy_unchanged() -> None:
    before = FULL.model_dump()
    build_plan(FULL)
    build_plan(FULL)
    assert FULL.model_dump() == before
    assert len(build_plan(FULL).stages[0].gates) == 2


# --- verify grouping -----------------------------------------------------------------


def test_consecutive_gates_and_tasks_group() -> None:
    entries = [timed("1h"), label("a"), task("t1"), task("t2"), task("t3"), timed("5m"), task("t4")]
    stages = verify_stages(entries)
    assert [s.key for s in stages] == ["verify.0", "verify.2", "verify.5", "verify.6"]
    assert stages[0].gates == [timed("1h"), label("a")]
    assert names(stages[1].tasks) == ["t1", "t2", "t3"]
    assert stages[2].gates == [timed("5m")]
    assert names(stages[3].tasks) == ["t4"]
    assert all(s.phase == "verifying" for s in stages)


def test_verify_stages_of_nothing() -> None:
    assert verify_stages([]) == []


@given(st.lists(st.booleans(), max_size=12))
def test_grouping_keeps_every_entry_in_order(kinds: list[bool]) -> None:
    entries = [task(f"t{i}") if is_task else timed(f"{i}m") for i, is_task in enumerate(kinds)]
    stages = verify_stages(entries)
    flattened: list[Any] = []
    for s in stages:
        assert bool(s.tasks) != bool(s.gates)
        flattened.extend(names(s.tasks) if s.tasks else [g["timed"]["duration"] for g in s.gates])
    expected = [f"t{i}" if is_task else f"{i}m" for i, is_task in enumerate(kinds)]
    assert flattened == expected
    # Neighbouring stages alternate between gates and tasks.
    for a, b in itertools.pairwise(stages):
        assert a.is_gate != b.is_gate
    # Each key names the index of the first entry of its group.
    starts = [int(s.key.split(".")[1]) for s in stages]
    assert starts == [i for i, k in enumerate(kinds) if i == 0 or kinds[i - 1] != k]
    assert len({s.key for s in stages}) == len(stages)


# --- release-level hooks -------------------------------------------------------------


def test_release_plan() -> None:
    hooks = Hooks.model_validate(
        {"onStart": [task("open")], "onSuccess": [task("close")], "onFail": [task("page")]}
    )
    start, done, on_fail = release_plan(hooks)
    assert start is not None and start.key == "release.onStart"
    assert names(start.tasks) == ["open"]
    assert done is not None and done.key == "release.onSuccess"
    assert names(done.tasks) == ["close"]
    assert names(on_fail) == ["page"]


def test_release_plan_without_hooks() -> None:
    assert release_plan(Hooks()) == (None, None, [])


def test_plan_is_a_value() -> None:
    assert build_plan(FULL) == build_plan(FULL)
    assert isinstance(build_plan(FULL), Plan)
