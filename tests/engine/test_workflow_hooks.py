"""Seed 002's workflow semantics, continued: templates that never inject, verification
tasks and gates, environment hooks (policy) and release hooks (flow).
"""

from __future__ import annotations

from datetime import timedelta

from conveyor.clock import ManualClock
from conveyor.engine.service import Conveyor
from tests.conftest import DIGEST
from tests.engine.workflows import (
    REF,
    drive,
    lines,
    logger,
    node,
    settle,
    setup,
    sh,
    step,
    task,
)

# --- templates -----------------------------------------------------------------------------

EVIL = 'a b; touch injected; $(touch injected2) `touch injected3` " ; touch injected4 ; "'


def test_templates_become_single_arguments(cv: Conveyor) -> None:
    args = [
        "${{ environment.name }}",
        "${{ release.version }}",
        "${{ artifacts.web.digest }}",
        "${{ release.labels.x }}",
        "v=${{ release.version }} at ${{ environment.name }}",
    ]
    setup(
        cv,
        nodes=[{"name": "qa", "dependsOn": ["dev"]}],
        labels={"x": EVIL},
        steps=[step("deploy", sh("args", 'printf "%s\\n" "$#" "$@" > "args-$1.txt"', *args))],
    )
    view = settle(cv)

    assert view.status == "succeeded", view
    for env in ("dev", "qa"):
        assert lines(cv.workdir / f"args-{env}.txt") == [
            "5",
            env,
            "1.0.0",
            DIGEST,
            EVIL,
            f"v=1.0.0 at {env}",
        ]
    assert not list(cv.workdir.glob("injected*"))


def test_templates_in_a_shell_command_cannot_inject(cv: Conveyor) -> None:
    command = (
        'printf "%s\\n" ${{ environment.name }} ${{ release.labels.x }} '
        "${{ release.version }} > shell.txt"
    )
    setup(
        cv,
        labels={"x": EVIL},
        steps=[
            step(
                "deploy",
                {"name": "shell", "uses": "run", "with": {"command": command, "shell": True}},
            )
        ],
    )
    view = settle(cv)

    assert view.status == "succeeded", view
    assert lines(cv.workdir / "shell.txt") == ["dev", EVIL, "1.0.0"]
    assert not list(cv.workdir.glob("injected*"))


# --- verification ----------------------------------------------------------------------------


def test_a_failing_verification_task_fails_the_promotion_and_keeps_its_output(cv: Conveyor) -> None:
    setup(
        cv,
        nodes=[{"name": "qa", "dependsOn": ["dev"]}],
        steps=[step("deploy", logger("deploy", "deploy"))],
        verify=[sh("smoke", "echo smoke-said-no; exit 4")],
        hooks={"onSuccess": [logger("announce", "success")]},
    )
    view = settle(cv)

    assert view.status == "failed", view
    dev = node(view, "dev")
    assert dev.state == "failed"
    assert dev.deployed_at is not None  # it failed after deploying, in verification
    smoke = task(view, "dev", "smoke")
    assert smoke.stage.startswith("verify.")
    assert (smoke.status, smoke.error) == ("failed", "exit 4")
    assert "smoke-said-no" in smoke.output
    assert "smoke" in dev.detail
    assert node(view, "qa").state == "pending"
    assert lines(cv.workdir / "order.log") == ["deploy"]  # no onSuccess


def test_a_passing_verification_task_runs_after_the_workflow(cv: Conveyor) -> None:
    setup(cv, steps=[step("deploy", logger("deploy", "deploy"))], verify=[logger("smoke", "smoke")])
    view = settle(cv)
    assert view.status == "succeeded", view
    assert lines(cv.workdir / "order.log") == ["deploy", "smoke"]
    assert task(view, "dev", "smoke").status == "succeeded"


def test_a_timed_verification_gate_holds_the_promotion_in_verifying(
    cv: Conveyor, clock: ManualClock
) -> None:
    setup(
        cv,
        nodes=[{"name": "qa", "dependsOn": ["dev"]}],
        steps=[step("deploy", logger("deploy", "deploy-${{ environment.name }}"))],
        verify=[{"timed": {"duration": "30m"}}],
    )
    deployed = clock.now()
    view = drive(cv, lambda v: node(v, "dev").state == "verifying")
    for _ in range(3):
        cv.engine.run_pass()
    view = cv.show(REF)
    dev = node(view, "dev")
    assert dev.state == "verifying"
    assert "soak 30m" in dev.detail and "30m left" in dev.detail, dev.detail
    assert node(view, "qa").state == "pending"

    clock.advance(timedelta(minutes=29))
    cv.engine.run_pass()
    view = cv.show(REF)
    assert node(view, "dev").state == "verifying"
    assert "1m left" in node(view, "dev").detail, node(view, "dev").detail

    clock.advance(timedelta(minutes=1))
    view = drive(cv, lambda v: node(v, "dev").state == "succeeded")
    assert clock.now() == deployed + timedelta(minutes=30)  # no jump needed for dev
    assert any(g["kind"] == "timed" and g["result"] == "pass" for g in node(view, "dev").gates)

    view = settle(cv)  # qa soaks too: the engine sleeps 30m on the manual clock
    assert view.status == "succeeded", view
    assert clock.now() - deployed >= timedelta(minutes=60)
    assert lines(cv.workdir / "order.log") == ["deploy-dev", "deploy-qa"]


# --- hooks -----------------------------------------------------------------------------------

ENV_HOOKS = {
    "onStart": [logger("start", "${{ environment.name }}:start")],
    "onSuccess": [logger("success", "${{ environment.name }}:success")],
    "onFail": [logger("fail", "${{ environment.name }}:fail")],
}
RELEASE_HOOKS = {
    "onStart": [logger("start", "release:start")],
    "onSuccess": [logger("success", "release:success")],
    "onFail": [logger("fail", "release:fail")],
}
DEPLOY = [step("deploy", logger("deploy", "${{ environment.name }}:deploy"))]


def test_hooks_run_around_the_workflow_and_the_release(cv: Conveyor) -> None:
    setup(
        cv,
        nodes=[{"name": "qa", "dependsOn": ["dev"]}],
        steps=DEPLOY,
        hooks=ENV_HOOKS,
        flow_hooks=RELEASE_HOOKS,
    )
    view = settle(cv)

    assert view.status == "succeeded", view
    assert lines(cv.workdir / "order.log") == [
        "release:start",
        "dev:start",
        "dev:deploy",
        "dev:success",
        "qa:start",
        "qa:deploy",
        "qa:success",
        "release:success",
    ]
    assert {(t.stage, t.status) for t in view.release_tasks} == {
        ("release.onStart", "succeeded"),
        ("release.onSuccess", "succeeded"),
    }
    assert {t.stage for t in node(view, "dev").tasks} == {
        "hook.onStart",
        "step.deploy",
        "hook.onSuccess",
    }


def test_a_failing_environment_onsuccess_hook_fails_and_runs_onfail(cv: Conveyor) -> None:
    hooks = {
        **ENV_HOOKS,
        "onSuccess": [logger("success", "${{ environment.name }}:success", fail=True)],
    }
    setup(
        cv,
        nodes=[{"name": "qa", "dependsOn": ["dev"]}],
        steps=DEPLOY,
        hooks=hooks,
        flow_hooks=RELEASE_HOOKS,
    )
    view = settle(cv)

    assert view.status == "failed", view
    dev = node(view, "dev")
    assert dev.state == "failed" and "success" in dev.detail, dev.detail
    assert task(view, "dev", "success").status == "failed"
    assert task(view, "dev", "fail").status == "succeeded"
    assert node(view, "qa").state == "pending"
    got = lines(cv.workdir / "order.log")
    assert got[:4] == ["release:start", "dev:start", "dev:deploy", "dev:success"], got
    # (the order of the two onFail hooks is the subject of a test of its own)
    assert sorted(got[4:]) == ["dev:fail", "release:fail"], got


def test_a_failing_environment_onstart_hook_stops_before_the_workflow(cv: Conveyor) -> None:
    hooks = {**ENV_HOOKS, "onStart": [logger("start", "${{ environment.name }}:start", fail=True)]}
    setup(cv, steps=DEPLOY, hooks=hooks)
    view = settle(cv)

    assert view.status == "failed", view
    assert node(view, "dev").state == "failed"
    assert lines(cv.workdir / "order.log") == ["dev:start", "dev:fail"]


def test_a_failing_workflow_runs_both_onfail_hooks_and_no_onsuccess(cv: Conveyor) -> None:
    setup(
        cv, steps=[step("deploy", sh("boom", "exit 1"))], hooks=ENV_HOOKS, flow_hooks=RELEASE_HOOKS
    )
    view = settle(cv)

    assert view.status == "failed", view
    got = lines(cv.workdir / "order.log")
    assert got[:2] == ["release:start", "dev:start"], got
    assert sorted(got[2:]) == ["dev:fail", "release:fail"], got
    assert "boom" in view.message


def test_the_release_onfail_hook_runs_after_the_environment_onfail_hooks(cv: Conveyor) -> None:
    # The release is concluded (failed, its onFail hook run) only once its promotions are
    # done, their onFail hooks (a rollback, say) included. A slow environment onFail hook
    # makes the order visible.
    hooks = {
        "onFail": [
            sh("rollback", 'sleep 0.3; echo "$1" >> order.log', "${{ environment.name }}:fail")
        ]
    }
    setup(cv, steps=[step("deploy", sh("boom", "exit 1"))], hooks=hooks, flow_hooks=RELEASE_HOOKS)
    view = settle(cv)

    assert view.status == "failed", view
    assert lines(cv.workdir / "order.log") == ["release:start", "dev:fail", "release:fail"]


def test_a_failing_release_onsuccess_hook_fails_the_release_and_runs_onfail(cv: Conveyor) -> None:
    flow_hooks = {**RELEASE_HOOKS, "onSuccess": [logger("success", "release:success", fail=True)]}
    setup(
        cv,
        nodes=[{"name": "qa", "dependsOn": ["dev"]}],
        steps=DEPLOY,
        hooks=ENV_HOOKS,
        flow_hooks=flow_hooks,
    )
    view = settle(cv)

    assert view.status == "failed", view
    assert "onSuccess" in view.message, view.message
    assert {n.environment: n.state for n in view.nodes} == {"dev": "succeeded", "qa": "succeeded"}
    assert lines(cv.workdir / "order.log") == [
        "release:start",
        "dev:start",
        "dev:deploy",
        "dev:success",
        "qa:start",
        "qa:deploy",
        "qa:success",
        "release:success",
        "release:fail",
    ]
    statuses = {(t.stage, t.task): t.status for t in view.release_tasks}
    assert statuses == {
        ("release.onStart", "start"): "succeeded",
        ("release.onSuccess", "success"): "failed",
        ("release.onFail", "fail"): "succeeded",
    }


def test_a_failing_release_onstart_hook_runs_no_promotion(cv: Conveyor) -> None:
    flow_hooks = {**RELEASE_HOOKS, "onStart": [logger("start", "release:start", fail=True)]}
    setup(cv, steps=DEPLOY, hooks=ENV_HOOKS, flow_hooks=flow_hooks)
    view = settle(cv)

    assert view.status == "failed", view
    assert "onStart" in view.message
    assert node(view, "dev").state == "pending"
    assert lines(cv.workdir / "order.log") == ["release:start", "release:fail"]
