"""What the engine parses once and keeps across passes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conveyor.engine.reportcache import ReportCache
from conveyor.model.definitions import FlowSpec, TaskDef
from conveyor.model.flow import FlowGraph
from conveyor.model.plan import Plan, Stage


@dataclass(frozen=True)
class FlowParts:
    spec: FlowSpec
    graph: FlowGraph
    start: Stage | None
    finish: Stage | None
    on_fail: list[TaskDef]


class Parsed:
    """What a pass would otherwise parse again each time, kept by the engine across passes:
    a promotion's plan (its policy snapshot never changes), a flow revision's graph and
    hooks, a gate's validated settings. Bounded: cleared whole when it grows too large."""

    LIMIT = 20_000

    def __init__(self) -> None:
        self.plans: dict[int, Plan] = {}
        self.flows: dict[tuple[str | None, int | None], FlowParts] = {}
        self.gate_settings: dict[tuple[int, str, int], Any] = {}
        # Health reports read so far, so that a look reads only those that came since.
        self.reports = ReportCache()

    def trim(self) -> None:
        for cache in (self.plans, self.flows, self.gate_settings):
            if len(cache) > self.LIMIT:
                cache.clear()
