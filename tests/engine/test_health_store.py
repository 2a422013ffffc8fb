"""Health reports through the store: recorded once, read back in time order, judged with the
product's rollout criteria."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from conveyor.clock import ManualClock
from conveyor.engine import health, resources
from conveyor.engine.service import Conveyor
from conveyor.errors import DefinitionError, NotFound
from conveyor.health.columnar import us
from conveyor.health.timeline import HealthState, Report, Weekends, evaluate, sort_reports
from conveyor.model.definitions import EntityDef
from conveyor.store.tables import HEALTH_STATE_CODES, HealthNodeRow, HealthReportRow
from tests.conftest import BASE, apply_yaml

H = timedelta(hours=1)

STRICT_PRODUCT = """
apiVersion: conveyor.dev/v1
kind: Product
metadata: {name: shop}
spec:
  rolloutCriteria: {healthyThreshold: 0.8, unhealthyThreshold: 0.25}
"""


@pytest.fixture
def t0(cv: Conveyor, clock: ManualClock) -> datetime:
    apply_yaml(cv, BASE)
    return clock.now()  # Monday 2026-01-05 09:00 UTC: no weekend in the next days


def rows(cv: Conveyor) -> int:
    with cv.store.session() as s:
        return s.scalar(select(func.count()).select_from(HealthReportRow)) or 0


def test_record_and_show(cv: Conveyor, clock: ManualClock, t0: datetime) -> None:
    assert cv.report_health("prod", "cluster-a", "n1", True, "HEALTHY", "1.0.0")
    assert cv.report_health("prod", "cluster-a", "n2", True, HealthState.DEFERRING, "1.0.0")
    clock.advance(10 * H)

    (health,) = cv.health("prod", "shop", "1.0.0").values()
    assert health.entity == "cluster-a"
    assert health.first_seen == t0
    assert (health.soak, health.healthy, health.unhealthy) == (10 * H, 10 * H, timedelta(0))
    assert health.healthy_ratio == 1.0
    assert health.satisfies_healthy and not health.unhealthy_verdict
    # Another environment's reports are not this one's.
    assert cv.health("qa", "shop", "1.0.0") == {}


def test_exact_duplicates_are_stored_once(cv: Conveyor, clock: ManualClock, t0: datetime) -> None:
    at = t0 - H
    assert cv.report_health("prod", "cluster-a", "n1", True, "HEALTHY", "1.0.0", at=at)
    assert not cv.report_health("prod", "cluster-a", "n1", True, "HEALTHY", "1.0.0", at=at)
    # The same instant in another offset is the same report.
    other_zone = at.astimezone(datetime.fromisoformat("2026-01-01T00:00:00+05:30").tzinfo)
    assert not cv.report_health("prod", "cluster-a", "n1", True, "healthy", "1.0.0", at=other_zone)
    assert rows(cv) == 1
    # Anything different is a report of its own, None state included.
    assert cv.report_health("prod", "cluster-a", "n1", False, "HEALTHY", "1.0.0", at=at)
    assert cv.report_health("prod", "cluster-a", "n1", True, None, "1.0.0", at=at)
    assert not cv.report_health("prod", "cluster-a", "n1", True, None, "1.0.0", at=at)
    assert cv.report_health("prod", "cluster-a", "n1", True, "WARNING", "1.0.0", at=at)
    assert cv.report_health("prod", "cluster-a", "n2", True, "HEALTHY", "1.0.0", at=at)
    assert rows(cv) == 5


def test_out_of_order_reports_are_read_in_time_order(
    cv: Conveyor, clock: ManualClock, t0: datetime
) -> None:
    apply_yaml(cv, STRICT_PRODUCT)
    clock.advance(10 * H)
    sent = [
        ("n1", t0, HealthState.HEALTHY),
        ("n1", t0 + 6 * H, HealthState.HEALTHY),
        ("n1", t0 + 4 * H, HealthState.ERROR),  # arrives late
    ]
    for node, at, state in sent:
        cv.report_health("prod", "cluster-a", node, True, state, "1.0.0", at=at)
    # Dated after `now` by more than the environment's maxClockSkew (5m): refused.
    with pytest.raises(DefinitionError, match="ahead of Conveyor's clock"):
        cv.report_health(
            "prod", "cluster-a", "n1", True, HealthState.ERROR, "1.0.0", at=t0 + 12 * H
        )

    health = cv.health("prod", "shop", "1.0.0")["cluster-a"]
    assert (health.soak, health.healthy, health.unhealthy) == (10 * H, 8 * H, 2 * H)
    # The product's own criteria: 80% healthy is enough (>=), 20% unhealthy is within 25%.
    assert health.satisfies_healthy and not health.unhealthy_verdict
    expected = evaluate(
        sort_reports(Report("cluster-a", n, at, True, s, "1.0.0") for n, at, s in sent),
        "1.0.0",
        clock.now(),
        Weekends(),
        0.8,
        0.25,
    )
    assert cv.health("prod", "shop", "1.0.0") == expected
    # Later, a report sent then counts from its time; or ask about an earlier moment.
    clock.advance(2 * H)
    cv.report_health("prod", "cluster-a", "n1", True, HealthState.ERROR, "1.0.0")
    clock.advance(2 * H)
    assert cv.health("prod", "shop", "1.0.0")["cluster-a"].unhealthy == 4 * H
    assert cv.health("prod", "shop", "1.0.0", at=t0 + 5 * H)["cluster-a"].unhealthy == H


def test_default_criteria_and_entity_filter(cv: Conveyor, clock: ManualClock, t0: datetime) -> None:
    cv.report_health("prod", "cluster-a", "n1", True, "HEALTHY", "1.0.0")
    cv.report_health("prod", "cluster-b", "n1", True, "ERROR", "v1.0.0")  # same version
    clock.advance(2 * H)
    cv.report_health("prod", "cluster-a", "n1", True, "ERROR", "1.0.0")
    clock.advance(H)

    both = cv.health("prod", "shop", "v1.0.0")
    assert sorted(both) == ["cluster-a", "cluster-b"]
    a = both["cluster-a"]
    # 2h of 3h healthy and 1h unhealthy: under 95%, over 5%.
    assert (a.healthy, a.unhealthy) == (2 * H, H)
    assert not a.satisfies_healthy and a.unhealthy_verdict
    assert both["cluster-b"].unhealthy == 3 * H
    assert list(cv.health("prod", "shop", "1.0.0", entity="cluster-b")) == ["cluster-b"]
    assert cv.health("prod", "shop", "1.0.0", entity="nowhere") == {}
    # Another version has not been seen: no soak, no verdict.
    other = cv.health("prod", "shop", "2.0.0")["cluster-a"]
    assert other.soak == timedelta(0) and other.first_seen is None
    assert not other.satisfies_healthy and not other.unhealthy_verdict


def test_unknown_state_is_refused(cv: Conveyor, t0: datetime) -> None:
    with pytest.raises(DefinitionError, match="unknown health state 'GREAT'") as exc:
        cv.report_health("prod", "cluster-a", "n1", True, "GREAT", "1.0.0")
    assert "HEALTHY, DEFERRING, WARNING, REPAIRING, SUSPENDED, TERMINAL, ERROR" in str(exc.value)
    assert rows(cv) == 0


def test_unknown_environment_is_refused(cv: Conveyor, t0: datetime) -> None:
    with pytest.raises(NotFound, match="Environment/staging does not exist"):
        cv.report_health("staging", "cluster-a", "n1", True, "HEALTHY", "1.0.0")
    with pytest.raises(NotFound, match="Environment/staging does not exist"):
        cv.health("staging", "shop", "1.0.0")
    with pytest.raises(NotFound, match="Product/cart does not exist"):
        cv.health("prod", "cart", "1.0.0")
    assert rows(cv) == 0


@pytest.mark.parametrize(
    ("entity", "node", "version", "message"),
    [
        ("", "n1", "1.0.0", "entity must not be empty"),
        ("cluster-a", " ", "1.0.0", "node must not be empty"),
        ("cluster-a", "n1", "", "version must not be empty"),
        ("x" * 201, "n1", "1.0.0", "entity is longer than 200 characters"),
    ],
)
def test_bad_fields_are_refused(
    cv: Conveyor, t0: datetime, entity: str, node: str, version: str, message: str
) -> None:
    with pytest.raises(DefinitionError, match=message):
        cv.report_health("prod", entity, node, True, "HEALTHY", version)
    assert rows(cv) == 0


def test_naive_times_are_refused(cv: Conveyor, t0: datetime) -> None:
    naive = t0.replace(tzinfo=None)
    with pytest.raises(DefinitionError, match="has no timezone"):
        cv.report_health("prod", "cluster-a", "n1", True, "HEALTHY", "1.0.0", at=naive)
    with pytest.raises(DefinitionError, match="has no timezone"):
        cv.health("prod", "shop", "1.0.0", at=naive)
    assert rows(cv) == 0


def test_nodes_are_named_once_per_environment_and_entity(
    cv: Conveyor, clock: ManualClock, t0: datetime
) -> None:
    for env, entity, node, state in [
        ("prod", "cluster-a", "n1", "HEALTHY"),
        ("prod", "cluster-a", "n1", "ERROR"),
        ("prod", "cluster-b", "n1", None),
        ("qa", "cluster-a", "n1", "TERMINAL"),
    ]:
        assert cv.report_health(env, entity, node, True, state, "1.0.0")
        clock.advance(H)
    with cv.store.session() as s:
        nodes = s.execute(
            select(HealthNodeRow.environment, HealthNodeRow.entity, HealthNodeRow.node)
        ).all()
        assert sorted(tuple(n) for n in nodes) == [
            ("prod", "cluster-a", "n1"),
            ("prod", "cluster-b", "n1"),
            ("qa", "cluster-a", "n1"),
        ]
        reports = s.scalars(select(HealthReportRow).order_by(HealthReportRow.id)).all()
        assert [(r.environment, r.entity, r.node, r.state) for r in reports] == [
            ("prod", "cluster-a", "n1", "HEALTHY"),
            ("prod", "cluster-a", "n1", "ERROR"),
            ("prod", "cluster-b", "n1", None),
            ("qa", "cluster-a", "n1", "TERMINAL"),
        ]
        assert [r.time_us for r in reports] == [us(t0 + k * H) for k in range(4)]
    # Each environment reads its own: cluster-a's n1 in qa is not prod's.
    assert cv.health("prod", "shop", "1.0.0")["cluster-a"].unhealthy == 3 * H
    assert cv.health("qa", "shop", "1.0.0", entity="cluster-a")["cluster-a"].soak == H


def test_every_state_has_a_stored_code() -> None:
    assert set(HEALTH_STATE_CODES) == {s.value for s in HealthState}
    # The read packs a code into 3 bits, 0 being "no state".
    assert sorted(HEALTH_STATE_CODES.values()) == list(range(1, len(HealthState) + 1))
    assert len(HealthState) < 8


def test_record_with_the_environment_given(
    cv: Conveyor, t0: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    with cv.store.session() as s:
        prod = health.current_environment(s, "prod")

    def unread(*_args: object) -> None:
        raise AssertionError("the environment was read again")

    monkeypatch.setattr(resources, "get_current", unread)
    with cv.store.session() as s:
        assert health.record(
            s, "prod", "cluster-a", "n1", t0, True, "HEALTHY", "1.0.0", t0, environment_spec=prod
        )
        assert not health.record(
            s, "prod", "cluster-a", "n1", t0, True, "HEALTHY", "1.0.0", t0, environment_spec=prod
        )
    # The given definition decides: here one that declares its entities.
    closed = prod.model_copy(update={"entities": [EntityDef(name="cluster-a")]})
    with (
        cv.store.session() as s,
        pytest.raises(DefinitionError, match="unknown entity 'cluster-z'"),
    ):
        health.record(
            s, "prod", "cluster-z", "n1", t0, True, "HEALTHY", "1.0.0", t0, environment_spec=closed
        )
    assert rows(cv) == 1
