"""Health reports in the store: record what nodes say, and judge a release's soak from them.

The arithmetic is `conveyor.health.timeline` (pure); this module validates input, keeps the
reports and feeds them to `evaluate` in time order with the product's rollout criteria.
Reports are telemetry, not decisions, so they are not written to the audit trail.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from conveyor.engine import resources
from conveyor.errors import DefinitionError, Problem
from conveyor.health.timeline import EntityHealth, HealthState, Report, Weekends, evaluate
from conveyor.model.definitions import ProductSpec
from conveyor.model.release import canonical_version
from conveyor.store.tables import HealthReportRow

STATES = tuple(s.value for s in HealthState)

# Column widths in tables.py: longer values are refused with a message, not cut.
_LIMITS = {"entity": 200, "node": 200, "version": 100}


def _problem(message: str, field: str) -> DefinitionError:
    return DefinitionError(Problem(message, "health report", None, field))


def parse_state(state: str | HealthState | None) -> HealthState | None:
    """A HealthState from its name (any case); None is a liveness-only report."""
    if state is None or isinstance(state, HealthState):
        return state
    try:
        return HealthState(state.strip().upper())
    except ValueError:
        raise _problem(
            f"unknown health state '{state}': use one of {', '.join(STATES)}", "state"
        ) from None


def _version(version: str) -> str:
    """The canonical spelling when `version` is a version (`v1.2.3` is `1.2.3`), as releases."""
    with contextlib.suppress(ValueError):
        return canonical_version(version)
    return version


def _check_aware(value: datetime, field: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise _problem(
            f"time {value.isoformat()} has no timezone: give an offset, e.g. "
            f"{value.isoformat()}+00:00 or ...Z",
            field,
        )


def record(
    session: Session,
    environment: str,
    entity: str,
    node: str,
    time: datetime,
    live: bool,
    state: str | HealthState | None,
    version: str,
    now: datetime,
) -> bool:
    """Store one report; False (and nothing stored) when the very same report is there already.

    Raises DefinitionError for invalid input and NotFound for an unknown environment.
    """
    parsed = parse_state(state)
    for field, value in (("entity", entity), ("node", node), ("version", version)):
        if not value.strip():
            raise _problem(f"{field} must not be empty", field)
        if len(value) > _LIMITS[field]:
            raise _problem(f"{field} is longer than {_LIMITS[field]} characters", field)
    _check_aware(time, "time")
    resources.get_current(session, "Environment", environment)
    version = _version(version)
    state_value = None if parsed is None else parsed.value
    same = select(HealthReportRow.id).where(
        HealthReportRow.environment == environment,
        HealthReportRow.entity == entity,
        HealthReportRow.node == node,
        HealthReportRow.time == time,
        HealthReportRow.live == live,
        HealthReportRow.version == version,
        HealthReportRow.state.is_(None)
        if state_value is None
        else HealthReportRow.state == state_value,
    )
    if session.scalars(same.limit(1)).first() is not None:
        return False
    session.add(
        HealthReportRow(
            environment=environment,
            entity=entity,
            node=node,
            time=time,
            live=live,
            state=state_value,
            version=version,
            received_at=now,
        )
    )
    session.flush()
    return True


def _reports(
    session: Session, environment: str, now: datetime, entity: str | None
) -> Iterator[Report]:
    # Ties in time keep the order received, so a node's later report at one instant wins.
    q = (
        select(HealthReportRow)
        .where(HealthReportRow.environment == environment, HealthReportRow.time <= now)
        .order_by(HealthReportRow.time, HealthReportRow.id)
    )
    if entity is not None:
        q = q.where(HealthReportRow.entity == entity)
    for row in session.scalars(q):
        yield Report(
            entity=row.entity,
            node=row.node,
            time=row.time,
            live=row.live,
            state=None if row.state is None else HealthState(row.state),
            version=row.version,
        )


def show(
    session: Session,
    environment: str,
    product: str,
    version: str,
    now: datetime,
    entity: str | None = None,
) -> dict[str, EntityHealth]:
    """Health of each entity of `environment` over the soak of `product@version` until `now`,
    judged against the product's rolloutCriteria (weekends, Saturday and Sunday UTC, not
    counted). Raises NotFound for an unknown environment or product."""
    _check_aware(now, "at")
    resources.get_current(session, "Environment", environment)
    spec = resources.get_current(session, "Product", product).spec
    assert isinstance(spec, ProductSpec)
    criteria = spec.rolloutCriteria
    return evaluate(
        _reports(session, environment, now, entity),
        _version(version),
        now,
        Weekends(),
        healthy_threshold=criteria.healthyThreshold,
        unhealthy_threshold=criteria.unhealthyThreshold,
    )
