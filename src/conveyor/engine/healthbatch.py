"""Many health reports in one unit of work, with a few statements per batch rather than
several per report (the API's batch path): the checks of `health.record`, reports already
stored (or twice in the batch) skipped, new nodes added, one insert for all."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from conveyor.clock import utc
from conveyor.engine import due
from conveyor.engine import health as h
from conveyor.engine.releases import stored_version
from conveyor.errors import DefinitionError
from conveyor.health.columnar import us
from conveyor.model.definitions import EnvironmentSpec
from conveyor.store.tables import (
    HEALTH_STATE_CODES,
    Base,
    HealthNodeRow,
    HealthReportRow,
    ReleaseRow,
)

# The tables, for Core inserts: the ORM's bulk insert does work for every row.
_REPORTS = Base.metadata.tables[HealthReportRow.__tablename__]
_NODES = Base.metadata.tables[HealthNodeRow.__tablename__]
Node = tuple[str, str, str]  # environment, entity, node
Key = tuple[int, int, bool, str, int | None]  # node id, time, live, version, state: a report


@dataclass(frozen=True)
class HealthReportIn:
    """One report as a reporter sends it."""

    environment: str
    entity: str
    node: str
    version: str
    state: str | None = None
    live: bool = True
    at: datetime | None = None


@dataclass(frozen=True)
class _Checked:
    node: Node
    time: datetime
    live: bool
    version: str
    state_code: int | None


def record_many(
    session: Session,
    reports: Sequence[HealthReportIn],
    specs: dict[str, EnvironmentSpec],
    now: datetime,
) -> int:
    """Store the new ones of `reports` (their environments' definitions in `specs`); how
    many were new. All or none: a bad report raises DefinitionError naming its index."""
    checked = []
    # What a report shares with the others of its batch (its environment's checks of the
    # entity, its version's spelling) is checked once: a batch is mostly one entity.
    seen: dict[tuple[str, str, str], str] = {}
    for i, r in enumerate(reports):
        try:
            checked.append(_checked(r, specs[r.environment], now, seen))
        except DefinitionError as exc:
            raise _at(i, exc) from None
    _versions_existed(session, checked)
    ids = _node_ids(session, {c.node for c in checked})
    fresh: dict[Key, _Checked] = {}
    for c in checked:
        fresh.setdefault((ids[c.node], us(c.time), c.live, c.version, c.state_code), c)
    for key in _stored(session, list(fresh)):
        fresh.pop(key, None)
    if fresh:
        session.execute(
            insert(_REPORTS),
            [
                {
                    "environment": c.node[0],
                    "node_id": key[0],
                    "time": c.time,
                    "time_us": key[1],
                    "live": c.live,
                    "state_code": c.state_code,
                    "version": c.version,
                    "received_at": now,
                }
                for key, c in fresh.items()
            ],
        )
        due.health_reported(session, now)
    return len(fresh)


def _at(index: int, exc: DefinitionError) -> DefinitionError:
    return DefinitionError([replace(p, file=f"reports[{index}]") for p in exc.problems])


def _checked(
    r: HealthReportIn, env: EnvironmentSpec, now: datetime, seen: dict[tuple[str, str, str], str]
) -> _Checked:
    state = h.parse_state(r.state)
    time = r.at or now
    shared = (r.environment, r.entity, r.version)
    version = seen.get(shared)
    if version is None or r.at is not None:
        h.check_fields(env, r.environment, r.entity, r.node, r.version, time)
        version = seen[shared] = stored_version(r.version)
    else:
        h.check_node(r.node)
    h.check_skew(time, now, env.health.maxClockSkew)
    code = None if state is None else HEALTH_STATE_CODES[state.value]
    return _Checked((r.environment, r.entity, r.node), time, r.live, version, code)


def _versions_existed(session: Session, checked: list[_Checked]) -> None:
    """No report from before its version's first release existed (one query)."""
    rows = session.execute(
        select(ReleaseRow.version, func.min(ReleaseRow.created_at))
        .where(ReleaseRow.version.in_({c.version for c in checked}))
        .group_by(ReleaseRow.version)
    )
    first = {version: created for version, created in rows}
    for i, c in enumerate(checked):
        created = first.get(c.version)
        if created is not None and c.time < utc(created):
            raise _at(
                i,
                h.problem(
                    f"time {c.time.isoformat()} is before release version {c.version} existed "
                    f"({utc(created).isoformat()}): a report speaks for the version it ran",
                    "time",
                ),
            )


def _node_ids(session: Session, wanted: set[Node]) -> dict[Node, int]:
    """Each node's id, the new ones added (the unit of work holds the write lock)."""

    def known() -> dict[Node, int]:
        # By environment and entity, then names: SQLite searches its unique index for
        # `env = ? AND entity = ? AND node IN (...)`, while a row-value IN over the
        # three columns scans every node ever reported.
        groups: dict[tuple[str, str], list[str]] = {}
        for environment, entity, node in sorted(wanted):
            groups.setdefault((environment, entity), []).append(node)
        found: dict[Node, int] = {}
        for (environment, entity), names in groups.items():
            if _postgresql(session):
                rows = session.execute(
                    _PG_NODES, {"env": environment, "entity": entity, "names": names}
                )
                found.update(((environment, entity, n), i) for n, i in rows if i is not None)
                continue
            for start in range(0, len(names), 500):  # SQLite's limit on bound parameters
                q = select(HealthNodeRow.id, HealthNodeRow.node).where(
                    HealthNodeRow.environment == environment,
                    HealthNodeRow.entity == entity,
                    HealthNodeRow.node.in_(names[start : start + 500]),
                )
                for node_id, node in session.execute(q):
                    found[(environment, entity, node)] = node_id
        return found

    ids = known()
    missing = wanted - set(ids)
    if missing:
        rows = [{"environment": e, "entity": n, "node": d} for e, n, d in sorted(missing)]
        session.execute(insert(_NODES), rows)
        ids = known()
    return ids


def _stored(session: Session, keys: list[Key]) -> set[Key]:
    """Which of `keys` are stored already."""
    found: set[Key] = set()
    if not keys:
        return found
    nodes = sorted({k[0] for k in keys})
    times = [k[1] for k in keys]
    if _postgresql(session):
        args = {"nodes": nodes, "lo": min(times), "hi": max(times)}
        found.update((n, t, live, v, c) for n, t, live, v, c in session.execute(_PG_STORED, args))
        return found & set(keys)
    for start in range(0, len(nodes), 500):
        q = select(
            HealthReportRow.node_id,
            HealthReportRow.time_us,
            HealthReportRow.live,
            HealthReportRow.version,
            HealthReportRow.state_code,
        ).where(
            HealthReportRow.node_id.in_(nodes[start : start + 500]),
            HealthReportRow.time_us.between(min(times), max(times)),
        )
        found.update((n, t, live, v, c) for n, t, live, v, c in session.execute(q))
    return found & set(keys)


# On PostgreSQL a batch's names or ids travel as one array, looked up one by one through
# the unique index (a subquery per element): `IN` with 500 parameters made a generic plan
# that compared every node of the entity with each of them, ~0.5 s a batch at 25,000 nodes
# and growing, and a join's plan hangs on statistics a young table lacks.
_PG_NODES = text(
    "SELECT n.node, (SELECT h.id FROM health_nodes h WHERE h.environment = :env "
    "AND h.entity = :entity AND h.node = n.node) FROM unnest(CAST(:names AS text[])) AS n(node)"
)
_PG_STORED = text(
    "SELECT r.node_id, r.time_us, r.live, r.version, r.state_code "
    "FROM unnest(CAST(:nodes AS bigint[])) AS n(id) CROSS JOIN LATERAL ("
    "SELECT * FROM health_reports r WHERE r.node_id = n.id "
    "AND r.time_us BETWEEN :lo AND :hi) AS r"
)


def _postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"
