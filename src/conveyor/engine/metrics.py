"""Metrics in the Prometheus text format (`conveyor metrics`; the server will serve the
same at /metrics). Every figure is read from the store, not counted in memory, so any
process answers the same and nothing is lost when an engine restarts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from conveyor.clock import utc
from conveyor.model.states import PromotionState, ReleaseStatus, TaskStatus
from conveyor.store.tables import AuditRow, HealthReportRow, PromotionRow, ReleaseRow, TaskRunRow

WAITING = (PromotionState.WAITING, PromotionState.PENDING)


def exposition(session: Session, now: datetime) -> str:
    """The text a Prometheus scrape reads: HELP and TYPE, then one sample per line."""
    lines: list[str] = []

    def family(name: str, kind: str, text: str, samples: list[tuple[str, float]]) -> None:
        lines.extend([f"# HELP {name} {text}", f"# TYPE {name} {kind}"])
        lines.extend(f"{name}{labels} {value:g}" for labels, value in samples)

    releases = _counts(session, ReleaseRow.status)
    family(
        "conveyor_releases",
        "gauge",
        "Releases by status.",
        [(f'{{status="{s}"}}', releases.get(s, 0)) for s in ReleaseStatus],
    )
    promotions = _counts(session, PromotionRow.state)
    family(
        "conveyor_promotions",
        "gauge",
        "Promotions by state.",
        [(f'{{state="{s}"}}', promotions.get(s, 0)) for s in PromotionState],
    )
    tasks = _counts(session, TaskRunRow.status)
    family(
        "conveyor_task_runs",
        "gauge",
        "Task runs by status (each run's latest attempt).",
        [(f'{{status="{s}"}}', tasks.get(s, 0)) for s in TaskStatus],
    )
    oldest = session.scalar(
        select(func.min(PromotionRow.state_since)).where(PromotionRow.state.in_(WAITING))
    )
    waited = (now - utc(oldest)).total_seconds() if oldest else 0.0
    family(
        "conveyor_oldest_waiting_promotion_seconds",
        "gauge",
        "How long the promotion waiting longest has waited (0 when none waits).",
        [("", max(waited, 0.0))],
    )
    for name, table, text in (
        ("conveyor_audit_events_total", AuditRow, "Events in the audit trail."),
        ("conveyor_health_reports_total", HealthReportRow, "Health reports stored."),
    ):
        count = session.scalar(select(func.count()).select_from(table)) or 0
        family(name, "counter", text, [("", count)])
    return "\n".join(lines) + "\n"


def _counts(session: Session, column: InstrumentedAttribute[str]) -> dict[str, int]:
    rows = session.execute(select(column, func.count()).group_by(column))
    return {str(value): count for value, count in rows}
