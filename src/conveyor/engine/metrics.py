"""Prometheus metrics (`conveyor metrics`, `conveyor engine --metrics-port`).

The store's figures are read at each scrape by a collector, not counted in memory, so any
process answers the same and nothing is lost when an engine restarts. Only the engine's own
pass time lives in the process that measures it (`conveyor_engine_pass_seconds`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from conveyor.clock import utc
from conveyor.engine import passtimes
from conveyor.model.states import PromotionState, ReleaseStatus, TaskStatus
from conveyor.store.tables import (
    AuditRow,
    GateResultRow,
    HealthReportRow,
    OutboxRow,
    PromotionRow,
    ReleaseRow,
    TaskRunRow,
)

WAITING = (PromotionState.WAITING, PromotionState.PENDING)
# Promotions last from seconds (a `run` task) to days (a soak): 1 s to a week.
DURATION_BUCKETS = (1, 5, 30, 60, 300, 900, 3600, 4 * 3600, 86400, 7 * 86400)


class StoreCollector(Collector):
    """The store's figures, as of `now`, read by `session` at each collect."""

    def __init__(self, session: Session, now: datetime) -> None:
        self.session, self.now = session, now

    def collect(self) -> Iterator[Metric]:
        s = self.session
        releases = GaugeMetricFamily("conveyor_releases", "Releases by status.", labels=["status"])
        counts = _counts(s, ReleaseRow.status)
        for status in ReleaseStatus:
            releases.add_metric([str(status)], counts.get(status, 0))
        yield releases

        promotions = GaugeMetricFamily(
            "conveyor_promotions",
            "Promotions by environment and state.",
            labels=["environment", "state"],
        )
        by_env = s.execute(
            select(PromotionRow.environment, PromotionRow.state, func.count()).group_by(
                PromotionRow.environment, PromotionRow.state
            )
        )
        counted: dict[str, dict[str, int]] = defaultdict(dict)
        for environment, state, count in by_env:
            counted[environment][state] = count
        # Every state of every environment, 0 included: a series that vanished when its last
        # promotion moved on would read as "no data", not as none.
        for environment, states in sorted(counted.items()):
            for state in PromotionState:
                promotions.add_metric([environment, str(state)], states.get(state, 0))
        yield promotions

        tasks = GaugeMetricFamily(
            "conveyor_task_runs",
            "Task runs by status (each run's latest attempt).",
            labels=["status"],
        )
        task_counts = _counts(s, TaskRunRow.status)
        for task_status in TaskStatus:
            tasks.add_metric([str(task_status)], task_counts.get(task_status, 0))
        yield tasks

        yield from self._waits()
        yield _durations(s)
        due = s.scalar(
            select(func.count()).select_from(ReleaseRow).where(ReleaseRow.next_look_at <= self.now)
        )
        yield GaugeMetricFamily(
            "conveyor_queue_depth", "Releases due for the engine to look at now.", value=due or 0
        )
        undelivered = s.scalar(
            select(func.count()).select_from(OutboxRow).where(OutboxRow.delivered_at.is_(None))
        )
        yield GaugeMetricFamily(
            "conveyor_notifications_undelivered",
            "Notifications not delivered yet (retrying, or given up).",
            value=undelivered or 0,
        )
        for name, action, text in (
            ("conveyor_recalls", "release.recall", "Releases recalled."),
            ("conveyor_task_failures", "task.failed", "Task attempts that failed for good."),
        ):
            events = s.scalar(select(func.count()).where(AuditRow.action == action))
            yield CounterMetricFamily(name, text, value=events or 0)
        for name, table, text in (
            ("conveyor_audit_events", AuditRow, "Events in the audit trail."),
            ("conveyor_health_reports", HealthReportRow, "Health reports stored."),
        ):
            rows = s.scalar(select(func.count()).select_from(table))
            yield CounterMetricFamily(name, text, value=rows or 0)

    def _waits(self) -> Iterator[Metric]:
        s = self.session
        oldest = s.scalar(
            select(func.min(PromotionRow.state_since)).where(PromotionRow.state.in_(WAITING))
        )
        waited = (self.now - utc(oldest)).total_seconds() if oldest else 0.0
        yield GaugeMetricFamily(
            "conveyor_oldest_waiting_promotion_seconds",
            "How long the promotion waiting longest has waited (0 when none waits).",
            value=max(waited, 0.0),
        )
        # The gates holding promotions now: this generation's results that say wait.
        holding = s.execute(
            select(GateResultRow.kind, func.count(func.distinct(PromotionRow.id)))
            .join(PromotionRow, PromotionRow.id == GateResultRow.promotion_id)
            .where(
                PromotionRow.state == PromotionState.WAITING,
                GateResultRow.generation == PromotionRow.generation,
                GateResultRow.result == "wait",
            )
            .group_by(GateResultRow.kind)
        )
        by_kind = {kind: count for kind, count in holding}
        gates = GaugeMetricFamily(
            "conveyor_gates_waiting",
            "Promotions held by a gate, by the gate's kind.",
            labels=["kind"],
        )
        for kind, count in sorted(by_kind.items()):
            gates.add_metric([kind], count)
        yield gates
        yield GaugeMetricFamily(
            "conveyor_approvals_pending",
            "Promotions waiting for an approval.",
            value=by_kind.get("approval", 0),
        )


def _durations(s: Session) -> Metric:
    """From running to done, for each finished promotion, by environment (the time spent
    waiting for gates before is `conveyor_oldest_waiting_promotion_seconds`'s business)."""
    family = HistogramMetricFamily(
        "conveyor_promotion_duration_seconds",
        "How long finished promotions ran, from their first task to their end.",
        labels=["environment"],
    )
    spans = s.execute(
        select(PromotionRow.environment, PromotionRow.started_at, PromotionRow.finished_at).where(
            PromotionRow.started_at.is_not(None), PromotionRow.finished_at.is_not(None)
        )
    )
    seconds: dict[str, list[float]] = defaultdict(list)
    for environment, started, finished in spans:
        if started is not None and finished is not None:
            seconds[environment].append(max((utc(finished) - utc(started)).total_seconds(), 0))
    for environment, values in sorted(seconds.items()):
        placed = Counter(next((b for b in DURATION_BUCKETS if v <= b), None) for v in values)
        buckets, running = [], 0
        for bound in DURATION_BUCKETS:
            running += placed.get(bound, 0)
            buckets.append((str(float(bound)), float(running)))
        buckets.append(("+Inf", float(len(values))))
        family.add_metric([environment], buckets, sum_value=sum(values))
    return family


class PassCollector(Collector):
    """This process's engine passes (served by `conveyor engine --metrics-port`)."""

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(
            "conveyor_engine_pass_seconds",
            "How long this engine's passes take (read the due releases, move them, store).",
        )
        p = passtimes.passes
        buckets = [
            (str(float(b)), float(c)) for b, c in zip(passtimes.BUCKETS, p.counts, strict=True)
        ]
        family.add_metric([], [*buckets, ("+Inf", float(p.total))], sum_value=p.seconds)
        yield family


def exposition(session: Session, now: datetime, with_process: bool = False) -> str:
    """The text a Prometheus scrape reads; `with_process` adds this process's engine passes."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(session, now))
    if with_process:
        registry.register(PassCollector())
    return generate_latest(registry).decode()


def _counts(session: Session, column: InstrumentedAttribute[str]) -> dict[str, int]:
    rows = session.execute(select(column, func.count()).group_by(column))
    return {str(value): count for value, count in rows}
