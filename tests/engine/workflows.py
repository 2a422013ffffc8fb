"""Helpers for the workflow tests (test_workflow.py, test_workflow_hooks.py): tasks as small
`sh -c` scripts leaving marker files in `cv.workdir`, a flow set up around them, and ways
to run the engine until something holds."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
