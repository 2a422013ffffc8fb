"""Health reports in the store: record what nodes say, and judge a release's soak from them.

The arithmetic is pure: `conveyor.health.timeline` states it, `conveyor.health.columnar`
computes the same with numpy. This module validates input, keeps the reports and reads them
as columns for `evaluate_columns` with the product's rollout criteria.
Reports are telemetry, not decisions, so they are not written to the audit trail.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from conveyor.engine import resources
from conveyor.errors import DefinitionError, Problem
from conveyor.health.columnar import Columns, ColumnsBuilder, evaluate_columns
from conveyor.health.timeline import EntityHealth, HealthState, Weekends
from conveyor.model.definitions import EnvironmentSpec, ProductSpec
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
    env = resources.get_current(session, "Environment", environment).spec
    assert isinstance(env, EnvironmentSpec)
    if not env.allows_registration() and entity not in env.declared():
        known = ", ".join(sorted(env.declared())) or "none"
        raise _problem(
            f"unknown entity '{entity}' in {environment} (declared: {known}): add it to the "
            "environment's entities, or set health.allowRegistration: true",
            "entity",
        )
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
    session: Session, environment: str, now: datetime, entity: str | None, version: str
) -> Columns:
    """The environment's reports up to `now` as columns, read in chunks into arrays: only
    one chunk of rows exists as Python objects at a time.

    Rows come in the order received (id); `evaluate_columns` sorts them by time, and the
    order received breaks ties, so a node's later report at one instant wins.
    """
    in_env = HealthReportRow.environment == environment
    if entity is None and session.get_bind().dialect.name == "sqlite":
        # Without ANALYZE statistics SQLite reads a whole environment through the
        # (environment, entity, time) index, visiting table pages at random, then sorts:
        # several times slower than one scan in id order. `|| ''` keeps it off the index.
        in_env = (HealthReportRow.environment + "") == environment
    q = (
        select(
            HealthReportRow.entity,
            HealthReportRow.node,
            HealthReportRow.time,
            HealthReportRow.live,
            HealthReportRow.state,
            HealthReportRow.version == version,
        )
        .where(in_env, HealthReportRow.time <= now)
        .order_by(HealthReportRow.id)
    )
    if entity is not None:
        q = q.where(HealthReportRow.entity == entity)
    builder = ColumnsBuilder()
    if session.autoflush:
        session.flush()  # as an ORM query would: reports added in this session count
    result = session.connection().execute(q)
    try:
        # The DBAPI cursor's plain tuples: SQLAlchemy's Row objects and its per-value type
        # processing (a datetime per report) would triple the reading time. The raw times are
        # SQLite's UTC text or the driver's datetimes; `times_us` takes both.
        cursor = result.cursor
        while rows := cursor.fetchmany(8_192):
            builder.add(rows)
    finally:
        result.close()
    return builder.build()


def show(
    session: Session,
    environment: str,
    product: str,
    version: str,
    now: datetime,
    entity: str | None = None,
) -> dict[str, EntityHealth]:
    """Health of each entity of `environment` over the soak of `product@version` until `now`,
    judged against the product's rolloutCriteria (its weekend days, in its time zone, not
    counted). Declared entities that never reported are there with no soak.
    Raises NotFound for an unknown environment or product."""
    _check_aware(now, "at")
    env = resources.get_current(session, "Environment", environment).spec
    assert isinstance(env, EnvironmentSpec)
    spec = resources.get_current(session, "Product", product).spec
    assert isinstance(spec, ProductSpec)
    criteria = spec.rolloutCriteria
    result = evaluate_columns(
        _reports(session, environment, now, entity, _version(version)),
        now,
        weekends_of(spec),
        healthy_threshold=criteria.healthyThreshold,
        unhealthy_threshold=criteria.unhealthyThreshold,
    )
    for name in env.declared():
        if entity in (None, name) and name not in result:
            result[name] = silent(name)
    return result


def weekends_of(product: ProductSpec) -> Weekends:
    return Weekends(product.timeZone, product.rolloutCriteria.weekend_numbers())


def silent(entity: str) -> EntityHealth:
    """A declared entity with no report yet: in the pool, not soaking."""
    zero = timedelta(0)
    return EntityHealth(entity, zero, zero, zero, 0.0, 0.0, False, False, None)
