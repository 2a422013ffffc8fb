"""Helpers for the flow engine tests (test_flow_engine.py, test_flow_queue.py): flows and
policies built as documents, releases, and the engine driven without jumping the clock."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from conveyor.engine.reconciler import PassOutcome
from conveyor.engine.service import Conveyor
from conveyor.engine.view import NodeView, ReleaseView
from tests.conftest import BASE, DIGEST, apply_yaml, digest

# --- building definitions -------------------------------------------------------------
# Documents are written as JSON, which is YAML: no indentation or quoting traps.

LOG = 'echo "$0 $1" >> runs.txt'  # $0 = environment, $1 = version


def document(kind: str, name: str, spec: dict[str, Any]) -> str:
    doc = {"apiVersion": "conveyor.dev/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}
    return "---\n" + json.dumps(doc) + "\n"


def flow(
    nodes: list[dict[str, Any]], name: str = "main", version: str = "1.00", **spec: Any
) -> str:
    return document(
        "PromotionFlow",
        name,
        {
            "version": version,
            "product": "shop",
            "triggerEnvironment": "dev",
            "environments": nodes,
            **spec,
        },
    )


def workflow(script: str = LOG, timeout: str = "30s") -> str:
    """A policy for every environment: one task running `sh -c script ENV VERSION`."""
    task = {
        "name": "work",
        "uses": "run",
        "timeout": timeout,
        "with": {"args": ["sh", "-c", script, "${{ environment.name }}", "${{ release.version }}"]},
    }
    return document(
        "PromotionPolicy", "all", {"workflow": {"steps": [{"name": "deploy", "tasks": [task]}]}}
    )


def policy(name: str, selector: dict[str, Any], **body: Any) -> str:
    return document("PromotionPolicy", name, {"priority": 10, "selector": selector, **body})


PRODUCTION = {"environments": {"types": ["production"]}}


# qa's entry waits for the release label qa-signoff.
QA_SIGNOFF = policy(
    "qa-signoff",
    {"environments": {"names": ["qa"]}},
    gates=[{"releaseLabel": {"key": "qa-signoff"}}],
)


def setup(cv: Conveyor, *docs: str) -> None:
    apply_yaml(cv, BASE + "".join(docs))


def release(cv: Conveyor, version: str = "1.0.0", n: int = 0, trigger: str | None = "main") -> str:
    cv.create_release("shop", version, {"web": f"registry.local/web@{digest(n) if n else DIGEST}"})
    ref = f"shop@{version}"
    if trigger:
        cv.trigger(trigger, ref)
    return ref


def node(view: ReleaseView, environment: str) -> NodeView:
    (found,) = [n for n in view.nodes if n.environment == environment]
    return found


def states(view: ReleaseView) -> dict[str, str]:
    return {n.environment: n.state for n in view.nodes}


def runs(cv: Conveyor) -> list[str]:
    path = cv.workdir / "runs.txt"
    return path.read_text().splitlines() if path.exists() else []


# --- driving the engine without jumping the clock --------------------------------------

MAX_PASSES = 500


def step(cv: Conveyor, wait_s: float = 2.0) -> None:
    """One pass; if it moved nothing but tasks are in flight, wait for one to finish."""
    out = cv.engine.run_pass()
    if not out.moved and out.inflight:
        cv.engine.wake.wait(wait_s)


def idle(cv: Conveyor) -> PassOutcome:
    """`run_until_idle`, bounded: a livelock fails the test instead of hanging it."""
    out = cv.engine.run_until_idle(max_passes=MAX_PASSES)
    assert not out.moved, f"still moving after {MAX_PASSES} passes"
    return out


def settle(cv: Conveyor, timeout_s: float = 4.0) -> None:
    """Passes until nothing moves and no task is in flight; the clock does not move."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        out = cv.engine.run_pass()
        if out.moved:
            continue
        if not out.inflight:
            return
        cv.engine.wake.wait(0.5)
    raise AssertionError("the engine did not settle")


def drive(
    cv: Conveyor, ref: str, until: Callable[[ReleaseView], bool], timeout_s: float = 4.0
) -> ReleaseView:
    """Passes until `until(view)` holds; fail if the engine goes idle or time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        out = cv.engine.run_pass()
        view = cv.show(ref)
        if until(view):
            return view
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached: {states(view)}")
        if not out.moved:
            if not out.inflight:
                raise AssertionError(f"idle before the condition held: {states(view)}")
            cv.engine.wake.wait(0.5)


FOUR = [
    {"name": "qa", "dependsOn": ["dev"]},
    {"name": "prod", "dependsOn": ["qa"]},
    {"name": "prod-eu", "dependsOn": ["qa"]},
    {"name": "prod-asia", "dependsOn": ["qa"]},
]
PRODS = ["prod", "prod-eu", "prod-asia"]
