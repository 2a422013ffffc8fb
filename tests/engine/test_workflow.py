"""Seed 002's workflow semantics, end to end through the Conveyor facade.

Steps run in order and the tasks of one step in parallel; halt_on_error, wait_for_finish,
retries with exponential backoff, timeouts, kept output, templates that never inject,
verification tasks and gates, environment hooks (policy) and release hooks (flow).
Tasks are small `sh -c` scripts that leave marker files in `cv.workdir`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from conveyor.actions.base import OUTPUT_LIMIT
from conveyor.clock import ManualClock
from conveyor.engine.service import Conveyor
from conveyor.engine.view import NodeView, ReleaseView, TaskView
from tests.conftest import BASE, DIGEST, apply_yaml

REF = "shop@1.0.0"

# Wait (bounded: 60 x 50 ms = 3 s) until the file named by $1 exists; fail if it never does.
WAIT_FOR = 'i=0; while [ ! -e "$1" ] && [ $i -lt 60 ]; do sleep 0.05; i=$((i+1)); done; [ -e "$1" ]'
WAIT_1S = WAIT_FOR.replace("-lt 60", "-lt 20")  # the same, for at most 1 s


# --- helpers -------------------------------------------------------------------------


def sh(name: str, script: str, *args: str, **options: Any) -> dict[str, Any]:
    """A `run` task: `sh -c SCRIPT sh ARGS...` (so the script sees ARGS as $1, $2, ...)."""
    return {
        "name": name,
        "uses": "run",
        "with": {"args": ["sh", "-c", script, "sh", *args]},
        **options,
    }


def step(name: str, *tasks: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "tasks": list(tasks)}


def logger(name: str, line: str, fail: bool = False) -> dict[str, Any]:
    """A task appending `line` (which may hold templates) to order.log; then exit 1 if `fail`."""
    return sh(name, 'echo "$1" >> order.log' + ("; exit 1" if fail else ""), line)


def setup(
    cv: Conveyor,
    *,
    steps: list[dict[str, Any]] | None = None,
    verify: list[dict[str, Any]] | None = None,
    hooks: dict[str, Any] | None = None,
    nodes: list[dict[str, Any]] | None = None,
    flow_hooks: dict[str, Any] | None = None,
    labels: dict[str, str] | None = None,
) -> None:
    """Apply a flow `main` (root dev, then `nodes`) and a policy `all`; create and trigger."""
    policy: dict[str, Any] = {}
    if steps is not None:
        policy["workflow"] = {"steps": steps}
    if verify is not None:
        policy["verify"] = verify
    if hooks is not None:
        policy["hooks"] = hooks
    flow: dict[str, Any] = {
        "version": "1.00",
        "product": "shop",
        "triggerEnvironment": "dev",
        "environments": nodes or [],
    }
    if flow_hooks is not None:
        flow["hooks"] = flow_hooks
    docs = [
        {
            "apiVersion": "conveyor.dev/v1",
            "kind": "PromotionFlow",
            "metadata": {"name": "main"},
            "spec": flow,
        },
        {
            "apiVersion": "conveyor.dev/v1",
            "kind": "PromotionPolicy",
            "metadata": {"name": "all"},
            "spec": policy,
        },
    ]
    # JSON is YAML: one document per line keeps the shell scripts free of YAML quoting.
    apply_yaml(cv, BASE + "".join(f"---\n{json.dumps(d)}\n" for d in docs))
    cv.create_release("shop", "1.0.0", {"web": f"registry.local/web@{DIGEST}"}, labels)
    cv.trigger("main", REF)


def settle(cv: Conveyor) -> ReleaseView:
    """Run the engine until idle (bounded, so a stuck engine fails instead of hanging)."""
    outcome = cv.engine.run_until_idle(max_passes=200)
    assert outcome.inflight == 0 and outcome.next_at is None and not outcome.moved, (
        f"the engine did not settle: {outcome}, {cv.show(REF)}"
    )
    return cv.show(REF)


def drive(cv: Conveyor, until: Callable[[ReleaseView], bool], seconds: float = 4.0) -> ReleaseView:
    """Single passes (the manual clock does not move) until `until(view)` holds."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        outcome = cv.engine.run_pass()
        view = cv.show(REF)
        if until(view):
            return view
        if not outcome.moved:
            cv.engine.wake.wait(0.05)  # set by a task thread when it finishes
    raise AssertionError(f"condition not reached in {seconds}s: {cv.show(REF)}")


def after_success_of(cv: Conveyor, name: str) -> ReleaseView:
    """Drive until task `name` in dev succeeded, run three more passes, and show the release:
    what must still hold a while after that task ended."""
    drive(
        cv, lambda v: any(t.task == name and t.status == "succeeded" for t in node(v, "dev").tasks)
    )
    for _ in range(3):
        cv.engine.run_pass()
    return cv.show(REF)


def background_then_next(name: str, script: str, **options: Any) -> list[dict[str, Any]]:
    """Step `first` with task `name` left in the background (its script sees `next.started`
    as $1), then step `second`, whose task `next` creates that file."""
    return [
        step("first", sh(name, script, "next.started", wait_for_finish=False, **options)),
        step("second", sh("next", "touch next.started")),
    ]


def node(view: ReleaseView, env: str) -> NodeView:
    return next(n for n in view.nodes if n.environment == env)


def task(view: ReleaseView, env: str, name: str) -> TaskView:
    found = [t for t in node(view, env).tasks if t.task == name]
    assert len(found) == 1, node(view, env).tasks
    return found[0]


def task_names(view: ReleaseView, env: str) -> set[str]:
    return {t.task for t in node(view, env).tasks}


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


# --- steps and parallel tasks ----------------------------------------------------------


def test_steps_run_in_order_and_the_tasks_of_a_step_in_parallel(cv: Conveyor) -> None:
    # `a` and `b` each announce themselves, then wait for the other: run one after the
    # other, the first would wait for a file that never comes and fail.
    rendezvous = f'touch "$1.started"; set -- "$2"; {WAIT_FOR}'
    setup(
        cv,
        steps=[
            step(
                "first",
                sh("a", rendezvous + " && echo first-a >> order.log", "a", "b.started"),
                sh("b", rendezvous + " && echo first-b >> order.log", "b", "a.started"),
            ),
            step(
                "second",
                sh("c", "[ -e a.started ] && [ -e b.started ] && echo second >> order.log"),
            ),
            step("third", logger("d", "third")),
        ],
    )
    view = settle(cv)

    assert view.status == "succeeded", view
    assert node(view, "dev").state == "succeeded"
    got = lines(cv.workdir / "order.log")
    assert sorted(got[:2]) == ["first-a", "first-b"] and got[2:] == ["second", "third"], got
    dev = node(view, "dev")
    assert [(t.stage, t.task, t.status) for t in sorted(dev.tasks, key=lambda t: t.task)] == [
        ("step.first", "a", "succeeded"),
        ("step.first", "b", "succeeded"),
        ("step.second", "c", "succeeded"),
        ("step.third", "d", "succeeded"),
    ]


def test_a_later_step_waits_for_every_task_of_the_step_before(cv: Conveyor) -> None:
    # `slow` ends only when the test says so; `next` must not start before.
    setup(
        cv,
        steps=[
            step(
                "first",
                logger("fast", "fast"),
                sh("slow", f"{WAIT_FOR} && echo slow >> order.log", "go"),
            ),
            step("second", logger("next", "next")),
        ],
    )
    view = after_success_of(cv, "fast")
    assert "next" not in task_names(view, "dev")
    assert task(view, "dev", "slow").status == "running"
    assert node(view, "dev").state == "running"
    (cv.workdir / "go").touch()
    view = settle(cv)
    assert view.status == "succeeded", view
    assert lines(cv.workdir / "order.log") == ["fast", "slow", "next"]


# --- halt_on_error -----------------------------------------------------------------------

FLOW_3 = [{"name": "qa", "dependsOn": ["dev"]}, {"name": "prod", "dependsOn": ["qa"]}]


def test_a_failing_task_fails_the_promotion_and_stops_the_workflow(cv: Conveyor) -> None:
    setup(
        cv,
        nodes=FLOW_3,
        steps=[
            step("prepare", logger("ok", "ok")),
            step(
                "deploy",
                sh("boom", "echo it-broke >&2; exit 3"),
                sh("sibling", "sleep 5; touch sibling.done"),
            ),
            step("after", sh("later", "touch later.marker")),
        ],
    )
    view = settle(cv)

    assert view.status == "failed", view
    dev = node(view, "dev")
    assert dev.state == "failed"
    assert "boom" in dev.detail and "exit 3" in dev.detail, dev.detail
    assert "dev" in view.message and "boom" in view.message, view.message
    boom = task(view, "dev", "boom")
    assert (boom.status, boom.error, boom.attempt) == ("failed", "exit 3", 1)
    assert "it-broke" in boom.output
    assert task(view, "dev", "ok").status == "succeeded"
    # A task still running beside the failure is stopped.
    assert task(view, "dev", "sibling").status == "cancelled"
    assert not (cv.workdir / "sibling.done").exists()
    # The later step never started: no task row, no marker.
    assert "later" not in task_names(view, "dev")
    assert not (cv.workdir / "later.marker").exists()
    # Nothing downstream ran; the child says why.
    qa = node(view, "qa")
    assert qa.state == "pending" and qa.tasks == []
    assert "blocked" in qa.detail and "failed" in qa.detail and "dev" in qa.detail, qa.detail
    assert node(view, "prod").state == "pending" and node(view, "prod").tasks == []
    assert lines(cv.workdir / "order.log") == ["ok"]


def test_every_descendant_of_a_failure_says_it_is_blocked(cv: Conveyor) -> None:
    setup(cv, nodes=FLOW_3, steps=[step("deploy", sh("boom", "exit 1"))])
    view = settle(cv)

    assert view.status == "failed"
    for env in ("qa", "prod"):
        n = node(view, env)
        assert n.state == "pending"
        # prod waits on qa, which itself can never run: it is blocked by dev's failure too.
        assert "blocked" in n.detail and "dev" in n.detail, (env, n.detail)


def test_halt_on_error_false_records_the_failure_and_goes_on(cv: Conveyor) -> None:
    setup(
        cv,
        nodes=[{"name": "qa", "dependsOn": ["dev"]}],
        steps=[
            step(
                "deploy",
                sh("flaky", "echo soft-fail; exit 5", halt_on_error=False),
                logger("ok", "deploy-ok"),
            ),
            step("after", logger("later", "after")),
        ],
    )
    view = settle(cv)

    assert view.status == "succeeded", view
    for env in ("dev", "qa"):
        assert node(view, env).state == "succeeded"
        flaky = task(view, env, "flaky")
        assert (flaky.status, flaky.error) == ("failed", "exit 5")
        assert "soft-fail" in flaky.output
        assert task(view, env, "later").status == "succeeded"
    assert lines(cv.workdir / "order.log") == ["deploy-ok", "after"] * 2


# --- wait_for_finish ---------------------------------------------------------------------


def test_wait_for_finish_false_goes_on_but_the_promotion_waits_for_the_task(cv: Conveyor) -> None:
    # `slow` can only end after the next step started (it waits for next.started), and then
    # only when the test creates `go`.
    setup(
        cv,
        steps=background_then_next(
            "slow", f"{WAIT_FOR} && set -- go && {WAIT_FOR} && touch slow.done"
        ),
    )
    view = after_success_of(cv, "next")
    assert task(view, "dev", "slow").status == "running"
    assert node(view, "dev").state not in ("succeeded", "failed"), node(view, "dev")
    assert view.status == "running"

    (cv.workdir / "go").touch()
    view = settle(cv)
    assert view.status == "succeeded", view
    assert node(view, "dev").state == "succeeded"
    assert task(view, "dev", "slow").status == "succeeded"
    assert (cv.workdir / "slow.done").exists()


def test_a_failing_background_task_with_halt_on_error_fails_the_promotion(cv: Conveyor) -> None:
    setup(
        cv,
        nodes=[{"name": "qa", "dependsOn": ["dev"]}],
        steps=background_then_next("bg", f"{WAIT_FOR}; echo bg-gave-up; exit 7"),
    )
    view = settle(cv)

    assert view.status == "failed", view
    dev = node(view, "dev")
    assert dev.state == "failed"
    assert "bg" in dev.detail, dev.detail
    bg = task(view, "dev", "bg")
    assert (bg.status, bg.error) == ("failed", "exit 7") and "bg-gave-up" in bg.output
    # The next step did start (its task made the file bg waited for); it may be recorded as
    # succeeded or, when bg's failure is collected first, cancelled.
    assert (cv.workdir / "next.started").exists()
    assert task(view, "dev", "next").status in ("succeeded", "cancelled")
    assert node(view, "qa").state == "pending"


def test_a_failing_background_task_without_halt_on_error_does_not_fail(cv: Conveyor) -> None:
    setup(
        cv,
        steps=background_then_next("bg", f"{WAIT_FOR}; exit 7", halt_on_error=False),
    )
    view = settle(cv)
    assert view.status == "succeeded", view
    assert task(view, "dev", "bg").status == "failed"


def test_onsuccess_hook_waits_for_background_tasks_and_skips_when_they_fail(cv: Conveyor) -> None:
    # The environment's onSuccess hook announces a success: it must not run before the
    # background task ended, nor at all when that task fails and fails the promotion.
    # `bg` fails after at most 1 s; if onSuccess runs early, it fails at once.
    setup(
        cv,
        steps=[
            step("first", sh("bg", f"{WAIT_1S}; exit 1", "onsuccess.ran", wait_for_finish=False)),
            step("second", logger("next", "next")),
        ],
        hooks={
            "onSuccess": [sh("announce", "touch onsuccess.ran")],
            "onFail": [sh("alarm", "touch onfail.ran")],
        },
    )
    view = settle(cv)

    assert view.status == "failed", view
    assert node(view, "dev").state == "failed"
    assert (cv.workdir / "onfail.ran").exists()
    assert not (cv.workdir / "onsuccess.ran").exists(), (
        "onSuccess ran although the promotion failed: " + repr(node(view, "dev").tasks)
    )


def test_a_background_task_is_retried_after_its_step_has_passed(
    cv: Conveyor, clock: ManualClock
) -> None:
    counter = "n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; [ $n -ge 2 ]"
    setup(
        cv,
        steps=[
            step("first", sh("bg", counter, wait_for_finish=False, retries=1, backoff="5m")),
            step("second", logger("next", "next")),
        ],
    )
    view = settle(cv)

    bg = task(view, "dev", "bg")
    assert (bg.status, bg.attempt) == ("succeeded", 2), bg
    assert view.status == "succeeded", view
    assert (cv.workdir / "count").read_text().strip() == "2"


# --- retries and timeouts ----------------------------------------------------------------

COUNTER = (
    "n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; "
    'echo "attempt $n"; [ $n -ge 3 ]'
)


def test_retries_with_exponential_backoff_then_success(cv: Conveyor, clock: ManualClock) -> None:
    start = clock.now()
    setup(cv, steps=[step("deploy", sh("flaky", COUNTER, retries=2, backoff="10m"))])
    view = settle(cv)

    assert view.status == "succeeded", view
    flaky = task(view, "dev", "flaky")
    assert (flaky.status, flaky.attempt, flaky.error) == ("succeeded", 3, "")
    assert "attempt 3" in flaky.output
    assert (cv.workdir / "count").read_text().strip() == "3"
    waited = clock.now() - start
    # backoff * 2**(attempt-1): 10m after the first failure, 20m after the second.
    assert timedelta(minutes=30) <= waited < timedelta(minutes=40), waited


def test_retries_while_waiting_the_task_says_retrying(cv: Conveyor, clock: ManualClock) -> None:
    setup(cv, steps=[step("deploy", sh("flaky", COUNTER, retries=2, backoff="10m"))])
    start = clock.now()
    view = drive(cv, lambda v: any(t.status == "retrying" for t in node(v, "dev").tasks))
    flaky = task(view, "dev", "flaky")
    assert flaky.attempt == 1 and flaky.error == "exit 1"
    assert node(view, "dev").state == "running"
    for _ in range(3):  # the clock has not moved: nothing is due
        cv.engine.run_pass()
    assert (cv.workdir / "count").read_text().strip() == "1"
    assert clock.now() == start


def test_retries_exhausted_fail_the_promotion(cv: Conveyor, clock: ManualClock) -> None:
    start = clock.now()
    setup(cv, steps=[step("deploy", sh("flaky", COUNTER, retries=1, backoff="10m"))])
    view = settle(cv)

    assert view.status == "failed", view
    flaky = task(view, "dev", "flaky")
    assert (flaky.status, flaky.attempt, flaky.error) == ("failed", 2, "exit 1")
    assert (cv.workdir / "count").read_text().strip() == "2"
    assert clock.now() - start >= timedelta(minutes=10)
    assert node(view, "dev").state == "failed"


def test_a_task_over_its_timeout_is_stopped_and_fails(cv: Conveyor) -> None:
    setup(
        cv,
        steps=[
            step("deploy", sh("sleepy", "echo going-to-sleep; sleep 30; touch woke", timeout="1s")),
        ],
    )
    began = time.monotonic()
    view = settle(cv)

    assert time.monotonic() - began < 4.5
    assert view.status == "failed", view
    sleepy = task(view, "dev", "sleepy")
    assert sleepy.status == "failed"
    assert "timed out" in sleepy.error, sleepy.error
    assert "going-to-sleep" in sleepy.output
    assert "timed out" in node(view, "dev").detail
    assert not (cv.workdir / "woke").exists()


# --- output --------------------------------------------------------------------------------


def test_task_output_keeps_stdout_and_stderr(cv: Conveyor) -> None:
    setup(
        cv,
        steps=[
            step("deploy", sh("talk", "echo to-stdout; echo to-stderr >&2; echo more-stdout")),
        ],
    )
    view = settle(cv)

    assert view.status == "succeeded"
    out = task(view, "dev", "talk").output
    for word in ("to-stdout", "to-stderr", "more-stdout"):
        assert word in out, out


def test_a_huge_output_is_cut_in_the_middle(cv: Conveyor) -> None:
    # ~330 kB: the head and the tail are kept, the middle is cut.
    script = (
        'echo FIRST-LINE; i=0; while [ $i -lt 30000 ]; do echo "line $i"; i=$((i+1)); '
        "done; echo LAST-LINE"
    )
    setup(cv, steps=[step("deploy", sh("loud", script))])
    view = settle(cv)

    assert view.status == "succeeded", view
    out = task(view, "dev", "loud").output
    assert OUTPUT_LIMIT <= len(out) <= OUTPUT_LIMIT + 200, len(out)
    assert "characters cut" in out
    assert out.startswith("FIRST-LINE") and out.rstrip().endswith("LAST-LINE")


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
