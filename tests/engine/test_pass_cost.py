"""A pass costs what is due, not what is open: releases waiting on a soak with nothing due
are not read, and a pass loads the releases that are due in a fixed number of queries."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import event

from conveyor.clock import ManualClock
from conveyor.engine.service import Conveyor
from tests.conftest import BASE, apply_yaml, digest

SOAK = """
---
apiVersion: conveyor.dev/v1
kind: PromotionFlow
metadata: {name: main}
spec:
  version: "1.00"
  product: shop
  triggerEnvironment: dev
  concurrency: {mode: queue, limit: 500}
  environments:
    - {name: qa, dependsOn: [dev]}
---
apiVersion: conveyor.dev/v1
kind: PromotionPolicy
metadata: {name: soak}
spec:
  gates:
    - timed: {duration: 1d}
"""


@contextmanager
def statements(cv: Conveyor) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(args[2])

    event.listen(cv.store.engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(cv.store.engine, "before_cursor_execute", count)


def waiting(cv: Conveyor, first: int, count: int) -> None:
    for n in range(first, first + count):
        cv.create_release("shop", f"1.{n}.0", {"web": f"registry.local/web@{digest(n + 1)}"})
        cv.trigger("main", f"shop@1.{n}.0")


def idle_pass(cv: Conveyor) -> list[str]:
    with statements(cv) as seen:
        outcome = cv.engine.run_pass()
    assert not outcome.moved
    return seen


def test_an_idle_pass_costs_the_same_with_5_and_80_releases_waiting(
    cv: Conveyor, clock: ManualClock
) -> None:
    apply_yaml(cv, BASE + SOAK)
    waiting(cv, 0, 5)
    cv.engine.run_pass()  # every release reaches its soak
    while cv.engine.run_pass().moved:
        pass
    five = idle_pass(cv)
    waiting(cv, 5, 75)
    while cv.engine.run_pass().moved:
        pass
    eighty = idle_pass(cv)
    assert len(eighty) == len(five) <= 6, eighty
    assert not any("FROM promotions" in s for s in eighty)  # nothing due: none read

    # When the soak ends for all at once, they are read together, not query by query.
    clock.advance(timedelta(days=1))
    with statements(cv) as seen:
        cv.engine.run_pass()
    selects = [s for s in seen if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) < 40, "\n".join(selects)
    cv.run_until_idle()
    assert {cv.show(f"shop@1.{n}.0").status for n in range(80)} == {"succeeded"}
