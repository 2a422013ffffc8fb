"""Seed 002's workflow semantics, end to end through the Conveyor facade: steps run in
order and the tasks of one step in parallel; halt_on_error, wait_for_finish, retries with
exponential backoff, timeouts, kept output. (Templates, verification and hooks:
test_workflow_hooks.py.)
"""

from __future__ import annotations

import time
from datetime import timedelta

from conveyor.actions.base import OUTPUT_LIMIT
from conveyor.clock import ManualClock
from conveyor.engine.service import Conveyor
from tests.engine.workflows import (
    WAIT_1S,
    WAIT_FOR,
    after_success_of,
    background_then_next,
    drive,
    lines,
    logger,
    node,
    settle,
    setup,
    sh,
    step,
    task,
    task_names,
)

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
