"""Health reports in the store: record what nodes say, and judge a release's soak from them.

The arithmetic is pure: `conveyor.health.timeline` states it, `conveyor.health.columnar`
computes the same with numpy. This module validates input, keeps the reports and reads them
as columns for `evaluate_columns` with the product's rollout criteria.
Reports are telemetry, not decisions, so they are not written to the audit trail.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import ColumnElement, Row, case, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from conveyor.clock import utc
from conveyor.engine import due, resources
from conveyor.engine.releases import stored_version
from conveyor.errors import DefinitionError, Problem
from conveyor.gates import HealthRules
from conveyor.health.columnar import I64, STATE_CODES, Columns, evaluate_columns, us
from conveyor.health.timeline import EntityHealth, HealthState, Weekends
from conveyor.model.definitions import EnvironmentSpec, ProductSpec
from conveyor.model.duration import format_duration

if TYPE_CHECKING:
    from conveyor.engine.reportcache import ReportCache
from conveyor.store.tables import (
    HEALTH_STATE_CODES,
    HEALTH_STATE_NAMES,
    HealthNodeRow,
    HealthReportRow,
    ReleaseRow,
)

STATES = tuple(s.value for s in HealthState)

# Column widths in tables.py: longer values are refused with a message, not cut.
_LIMITS = {"entity": 200, "node": 200, "version": 100}


def problem(message: str, field: str) -> DefinitionError:
    return DefinitionError(Problem(message, "health report", None, field))


def parse_state(state: str | HealthState | None) -> HealthState | None:
    """A HealthState from its name (any case); None is a liveness-only report."""
    if state is None or isinstance(state, HealthState):
        return state
    try:
        return HealthState(state.strip().upper())
    except ValueError:
        raise problem(
            f"unknown health state '{state}': use one of {', '.join(STATES)}", "state"
        ) from None


def _check_aware(value: datetime, field: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise problem(
            f"time {value.isoformat()} has no timezone: give an offset, e.g. "
            f"{value.isoformat()}+00:00 or ...Z",
            field,
        )


def check_skew(time: datetime, now: datetime, skew: timedelta) -> None:
    if time > now + skew:
        raise problem(
            f"time {time.isoformat()} is {format_duration(time - now)} ahead of Conveyor's "
            f"clock, more than the environment's maxClockSkew ({format_duration(skew)}): "
            "check the reporter's clock, or leave the time out to mean now",
            "time",
        )


def check_when(
    session: Session, time: datetime, now: datetime, skew: timedelta, version: str, replay: bool
) -> None:
    check_skew(time, now, skew)
    if replay:
        return
    first = session.scalar(
        select(func.min(ReleaseRow.created_at)).where(ReleaseRow.version == version)
    )
    if first is not None and time < utc(first):
        raise problem(
            f"time {time.isoformat()} is before release version {version} existed "
            f"({utc(first).isoformat()}): a report speaks for the version it ran",
            "time",
        )


def check_fields(
    env: EnvironmentSpec, environment: str, entity: str, node: str, version: str, time: datetime
) -> None:
    """What a report must be on its own: names given and not too long, a time with its
    zone, an entity the environment knows (or lets register)."""
    for field, value in (("entity", entity), ("node", node), ("version", version)):
        _check_name(field, value)
    _check_aware(time, "time")
    if not env.allows_registration() and entity not in env.declared():
        known = ", ".join(sorted(env.declared())) or "none"
        raise problem(
            f"unknown entity '{entity}' in {environment} (declared: {known}): add it to the "
            "environment's entities, or set health.allowRegistration: true",
            "entity",
        )


def check_node(node: str) -> None:
    """A node's name alone, when the rest of its report was checked with another's."""
    _check_name("node", node)


def _check_name(field: str, value: str) -> None:
    if not value.strip():
        raise problem(f"{field} must not be empty", field)
    if len(value) > _LIMITS[field]:
        raise problem(f"{field} is longer than {_LIMITS[field]} characters", field)


def current_environment(session: Session, environment: str) -> EnvironmentSpec:
    """The current definition of `environment`; raises NotFound if there is none."""
    spec = resources.get_current(session, "Environment", environment).spec
    assert isinstance(spec, EnvironmentSpec)
    return spec


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
    *,
    environment_spec: EnvironmentSpec | None = None,
    replay: bool = False,
) -> bool:
    """Store one report; False (and nothing stored) when the very same report is there already.

    `environment_spec` is the environment's current definition, for callers recording many
    reports at once: reading it costs more than the rest of a report.
    A report may not be dated further ahead of `now` than the environment's maxClockSkew,
    nor before the first release of its version was created (one backdated HEALTHY report
    would otherwise vouch for a whole soak); `replay` (a recorded history, `simulate`)
    skips the second check: it replays the past on purpose.
    Raises DefinitionError for invalid input and NotFound for an unknown environment.
    """
    parsed = parse_state(state)
    env = environment_spec
    if env is None:
        env = current_environment(session, environment)
    check_fields(env, environment, entity, node, version, time)
    version = stored_version(version)
    check_when(session, time, now, env.health.maxClockSkew, version, replay)
    state_code = None if parsed is None else HEALTH_STATE_CODES[parsed.value]
    node_id = _node_id(session, environment, entity, node)
    time_us = us(time)
    same = select(HealthReportRow.id).where(
        HealthReportRow.node_id == node_id,
        HealthReportRow.time_us == time_us,
        HealthReportRow.live == live,
        HealthReportRow.version == version,
        HealthReportRow.state_code.is_(None)
        if state_code is None
        else HealthReportRow.state_code == state_code,
    )
    if session.scalars(same.limit(1)).first() is not None:
        return False
    session.add(
        HealthReportRow(
            environment=environment,
            node_id=node_id,
            time=time,
            time_us=time_us,
            live=live,
            state_code=state_code,
            version=version,
            received_at=now,
        )
    )
    due.health_reported(session, now)
    session.flush()
    return True


def environments_of(session: Session, entity: str) -> list[str]:
    """The environments that declare `entity` or have had a report from it."""
    declared = {
        name
        for name, (spec, _) in resources.environments(session).items()
        if entity in spec.declared()
    }
    reported = session.scalars(
        select(HealthNodeRow.environment).where(HealthNodeRow.entity == entity).distinct()
    )
    return sorted(declared.union(reported))


def _node_id(session: Session, environment: str, entity: str, node: str) -> int:
    """The node's id, the node added on its first report."""
    named = select(HealthNodeRow.id).where(
        HealthNodeRow.environment == environment,
        HealthNodeRow.entity == entity,
        HealthNodeRow.node == node,
    )
    found = session.scalar(named)
    if found is not None:
        return found
    row = HealthNodeRow(environment=environment, entity=entity, node=node)
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        # Another writer added the node between our look and our insert.
        return session.scalars(named).one()
    return row.id


# The evaluation reads each report as two integers (see `_reports`): its time and this.
_LIVE, _IS_VERSION, _NODE_SHIFT = 16, 8, 5  # the stored state code takes the low 3 bits
# Stored state code (0 for none) to `Columns.state`'s code.
_STATE_OF_CODE = np.array([STATE_CODES[HEALTH_STATE_NAMES.get(code)] for code in range(8)], np.int8)


def _reports(
    session: Session, environment: str, now: datetime, entity: str | None, version: str
) -> Columns:
    """The environment's reports up to `now` as columns.

    Rows come in the order received (id); `evaluate_columns` sorts them by time, and the
    order received breaks ties, so a node's later report at one instant wins.
    """
    if session.autoflush:
        session.flush()  # as an ORM query would: reports added in this session count
    r, n = HealthReportRow, HealthNodeRow
    nodes = select(n.id, n.entity, n.node).where(n.environment == environment)
    if entity is not None:
        nodes = nodes.where(n.entity == entity)
    q = select(r.time_us, packed(version)).where(r.time_us <= us(now)).order_by(r.id)
    if entity is None:
        # Through the index on environment alone: it lists an environment's rows in id
        # order, so there is no sort and the table is read in order. (Through an index
        # sorted by time, pages are visited at random and then sorted: several times slower.)
        q = q.where(r.environment == environment)
    else:
        q = q.where(r.node_id.in_(nodes.with_only_columns(n.id)))  # the (node_id, time) index
    pairs = read_integers(session, q, 2)
    # The names after the reports: a report's node is older than the report, so even where
    # each statement sees its own snapshot (PostgreSQL), every node read is named.
    return columns_of(pairs[0::2], pairs[1::2], session.execute(nodes).all())


def packed(version: str) -> ColumnElement[int]:
    """A report as one integer: its node, liveness, whether it is about `version`, its
    state. Whole numbers only: the driver hands them over more than twice as fast as text,
    and `+`/`*` spell the packing the same in SQLite and PostgreSQL."""
    r = HealthReportRow
    return (
        r.node_id * (1 << _NODE_SHIFT)
        + case((r.live, _LIVE), else_=0)
        + case((r.version == version, _IS_VERSION), else_=0)
        + func.coalesce(r.state_code, 0)
    )


def read_integers(session: Session, query: Executable, width: int) -> I64:
    """The rows of an all-integer query, flattened into one array (`width` per row)."""
    result = session.connection().execute(query)
    parts = []
    try:
        # The DBAPI cursor's plain tuples, flattened straight into an array: SQLAlchemy's
        # Row objects or a Python object per value would cost more than the query.
        cursor = result.cursor
        while rows := cursor.fetchmany(65_536):
            flat = itertools.chain.from_iterable(rows)
            parts.append(np.fromiter(flat, np.int64, width * len(rows)))
    finally:
        result.close()
    return np.concatenate(parts) if parts else np.empty(0, np.int64)


def nodes_of(session: Session, environment: str) -> Sequence[Row[int, str, str]]:
    n = HealthNodeRow
    return session.execute(select(n.id, n.entity, n.node).where(n.environment == environment)).all()


def columns_of(time_us: I64, packed: I64, nodes: Sequence[Row[int, str, str]]) -> Columns:
    """Columns from the read's integers; `nodes` are (id, entity, node) of every node id in it."""
    entity_codes: dict[str, int] = {}
    ids = np.array([n.id for n in nodes], np.int64)
    # Node ids to dense codes (a node id names one node of one entity, as codes must).
    dense = np.full(int(ids.max(initial=0)) + 1, -1, np.int32)
    dense[ids] = np.arange(len(ids), dtype=np.int32)
    entity_of = np.array(
        [entity_codes.setdefault(n.entity, len(entity_codes)) for n in nodes], np.int32
    )
    node = dense[packed >> _NODE_SHIFT]
    return Columns(
        entity=entity_of[node],
        node=node,
        time_us=np.ascontiguousarray(time_us),
        live=(packed & _LIVE).astype(np.bool_),
        state=_STATE_OF_CODE[packed & 7],
        is_version=(packed & _IS_VERSION).astype(np.bool_),
        entity_names=list(entity_codes),
        node_names=[n.node for n in nodes],
    )


def show(
    session: Session,
    environment: str,
    product: str,
    version: str,
    now: datetime,
    entity: str | None = None,
    reports: ReportCache | None = None,
) -> dict[str, EntityHealth]:
    """Health of each entity of `environment` over the soak of `product@version` until `now`,
    judged against the product's rolloutCriteria (its weekend days, in its time zone, not
    counted). Declared entities that never reported are there with no soak. With
    `reports` (an engine's), only the reports that arrived since it last looked are read.
    Raises NotFound for an unknown environment or product."""
    _check_aware(now, "at")
    env = current_environment(session, environment)
    spec = resources.get_current(session, "Product", product).spec
    assert isinstance(spec, ProductSpec)
    rules = rules_of(spec)
    version = stored_version(version)
    columns = (
        reports.columns(session, environment, version, now)
        if reports is not None and entity is None
        else _reports(session, environment, now, entity, version)
    )
    result = evaluate_columns(
        columns,
        now,
        rules.weekends,
        healthy_threshold=rules.healthy_threshold,
        unhealthy_threshold=rules.unhealthy_threshold,
    )
    for name in env.declared():
        if entity in (None, name) and name not in result:
            result[name] = silent(name)
    return result


def rules_of(product: ProductSpec) -> HealthRules:
    """The product's rollout criteria, as health is judged by them (reports and gates)."""
    criteria = product.rolloutCriteria
    return HealthRules(
        Weekends(product.timeZone, criteria.weekend_numbers()),
        criteria.healthyThreshold,
        criteria.unhealthyThreshold,
    )


def silent(entity: str) -> EntityHealth:
    """A declared entity with no report yet: in the pool, not soaking."""
    zero = timedelta(0)
    return EntityHealth(entity, zero, zero, zero, 0.0, 0.0, False, False, None)
