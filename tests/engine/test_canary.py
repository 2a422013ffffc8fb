"""Canary promotion and recall end to end: health reports in qa decide whether prod gets the
release, and a recall rolls the environments that got it back to the release before."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from conveyor.clock import ManualClock
from conveyor.engine.service import Conveyor
from conveyor.engine.view import NodeView
from conveyor.errors import DefinitionError, NotFound
from conveyor.store.tables import AuditRow
from tests.conftest import apply_yaml, digest, reopen
from tests.httpserver import Server

DEFS = """
apiVersion: conveyor.dev/v1
kind: Product
metadata: {name: shop}
spec:
  artifacts:
    - {name: web, type: image, repository: registry.local/web}
---
apiVersion: conveyor.dev/v1
kind: Environment
metadata: {name: dev}
---
apiVersion: conveyor.dev/v1
kind: Environment
metadata: {name: qa, labels: {canary: "yes"}}
spec:
  entities:
    - {name: qa-east}
    - {name: qa-west}
---
apiVersion: conveyor.dev/v1
kind: Environment
metadata: {name: prod}
spec: {type: production}
---
apiVersion: conveyor.dev/v1
kind: PromotionFlow
metadata: {name: main}
spec:
  version: "1"
  product: shop
  triggerEnvironment: dev
  environments:
    - {name: qa, dependsOn: [dev]}
    - name: prod
      dependsOn: [qa]
      policy:
        gates:
          - canary:
              entities: {withLabel: [{key: canary, values: ["yes"]}]}
              promoteWhenHealthy: {entities: 1, soak: 2h}
              recallWhenUnhealthy: {entities: 1, soak: 30m}
---
apiVersion: conveyor.dev/v1
kind: PromotionPolicy
metadata: {name: all}
spec:
  workflow:
    steps:
      - name: deploy
        tasks:
          - name: write
            uses: run
            with:
              args: [sh, -c, 'echo "$1" > "$0.txt"', "${{ environment.name }}",
                     "${{ release.version }}"]
"""

H = timedelta(hours=1)
# A 3h timed gate beside prod's canary gate.
SLOW = DEFS.replace(
    "        gates:\n          - canary:",
    "        gates:\n          - timed: {duration: 3h}\n          - canary:",
)
assert SLOW != DEFS


def start(cv: Conveyor, version: str) -> None:
    cv.create_release("shop", version, {"web": f"registry.local/web@{digest(len(version))}"})
    cv.trigger("main", f"shop@{version}")
    cv.run_until_idle()


def audit_events(cv: Conveyor, action: str) -> list[AuditRow]:
    with cv.store.session() as s:
        return list(s.scalars(select(AuditRow).where(AuditRow.action == action)))


def states(cv: Conveyor, version: str) -> dict[str, str]:
    return {n.node: n.state for n in cv.show(f"shop@{version}").nodes}


def node(cv: Conveyor, version: str, name: str) -> NodeView:
    return {n.node: n for n in cv.show(f"shop@{version}").nodes}[name]


def deployed(cv: Conveyor, env: str) -> str:
    return (cv.workdir / f"{env}.txt").read_text().strip()


def promote(cv: Conveyor, clock: ManualClock, version: str) -> None:
    start(cv, version)
    cv.report_health("qa", "qa-east", "pod-1", True, "HEALTHY", version)
    cv.run_until_idle()
    assert cv.show(f"shop@{version}").status == "succeeded"


def test_prod_waits_for_a_healthy_soak_in_qa_then_promotes(
    cv: Conveyor, clock: ManualClock
) -> None:
    apply_yaml(cv, DEFS)
    start(cv, "1.0.0")
    assert states(cv, "1.0.0") == {"dev": "succeeded", "qa": "succeeded", "prod": "waiting"}
    prod = node(cv, "1.0.0", "prod")
    # Both declared entities are in the pool; neither has reported the release yet.
    assert prod.detail == ("0 of 2 entities in qa healthy for 2h; need 1 for 2h at 95% healthy")

    reported = clock.now()
    cv.report_health("qa", "qa-east", "pod-1", True, "HEALTHY", "1.0.0")
    cv.report_health("qa", "qa-east", "pod-2", True, "DEFERRING", "1.0.0")
    cv.run_until_idle()  # the gate asks to look again when the 2h soak is done

    assert cv.show("shop@1.0.0").status == "succeeded"
    prod = node(cv, "1.0.0", "prod")
    assert prod.started_at == reported + 2 * H
    assert deployed(cv, "prod") == "1.0.0"


def test_a_warning_stretch_delays_promotion_by_the_threshold_arithmetic(
    cv: Conveyor, clock: ManualClock
) -> None:
    apply_yaml(cv, DEFS)
    start(cv, "1.0.0")
    t0 = clock.now()
    cv.report_health("qa", "qa-east", "pod-1", True, "WARNING", "1.0.0")
    clock.advance(H)
    cv.report_health("qa", "qa-east", "pod-1", True, "HEALTHY", "1.0.0")
    cv.run_until_idle()
    # 1h neither, then healthy: (x - 1h) / x >= 0.95 once x >= 20h of soak.
    prod = node(cv, "1.0.0", "prod")
    assert prod.state == "succeeded"
    assert prod.started_at == t0 + 20 * H


def test_unhealthy_canary_recalls_the_release_and_rolls_back(
    cv: Conveyor, clock: ManualClock
) -> None:
    apply_yaml(cv, DEFS)
    promote(cv, clock, "1.0.0")
    start(cv, "1.1.0")
    assert deployed(cv, "qa") == "1.1.0"
    cv.report_health("qa", "qa-east", "pod-1", True, "ERROR", "1.1.0")
    recalled_at = clock.now() + 30 * timedelta(minutes=1)
    cv.run_until_idle()

    view = cv.show("shop@1.1.0")
    assert view.status == "recalled"
    assert view.message.startswith("canary: 1 of 2 entities in qa unhealthy for 30m or more")
    assert states(cv, "1.1.0") == {"dev": "recalled", "qa": "recalled", "prod": "skipped"}
    # dev and qa run 1.0.0 again, through their workflow; prod never got 1.1.0.
    assert {e: deployed(cv, e) for e in ("dev", "qa", "prod")} == {
        "dev": "1.0.0",
        "qa": "1.0.0",
        "prod": "1.0.0",
    }
    old = cv.show("shop@1.0.0")
    rollbacks = {n.environment: n for n in old.nodes if n.node.startswith("rollback-")}
    assert sorted(rollbacks) == ["dev", "qa"]
    assert all(n.state == "succeeded" for n in rollbacks.values())
    assert all(n.started_at == recalled_at for n in rollbacks.values())
    events = audit_events(cv, "release.recall")
    assert [e.subject for e in events] == ["shop@1.1.0"]
    assert events[0].after == {"reason": view.message}


def test_recall_by_hand_is_idempotent_and_survives_a_restart(
    cv: Conveyor, clock: ManualClock, tmp_path: Path
) -> None:
    apply_yaml(cv, DEFS)
    promote(cv, clock, "1.0.0")
    promote(cv, clock, "1.1.0")
    assert deployed(cv, "prod") == "1.1.0"

    with pytest.raises(DefinitionError, match="needs a reason"):
        cv.recall("shop@1.1.0", "  ")
    with pytest.raises(NotFound):
        cv.recall("shop@9.9.9", "typo")
    assert cv.recall("shop@1.1.0", "data corruption seen in prod") is True
    cv.close()  # the engine stops before running any rollback

    again = reopen(cv, clock)
    try:
        with again.store.session() as s:
            audit_rows = s.scalar(select(func.count()).select_from(AuditRow))
        assert again.recall("shop@1.1.0", "twice") is False
        with again.store.session() as s:
            assert s.scalar(select(func.count()).select_from(AuditRow)) == audit_rows
        again.run_until_idle()
        assert {e: deployed(again, e) for e in ("dev", "qa", "prod")} == {
            "dev": "1.0.0",
            "qa": "1.0.0",
            "prod": "1.0.0",
        }
        view = again.show("shop@1.1.0")
        assert view.status == "recalled" and view.message == "data corruption seen in prod"
        assert set(states(again, "1.1.0").values()) == {"recalled"}
    finally:
        again.close()


def test_a_recalled_release_without_an_earlier_one_is_only_stopped(
    cv: Conveyor, clock: ManualClock
) -> None:
    apply_yaml(cv, DEFS)
    start(cv, "1.0.0")
    assert cv.recall("shop@1.0.0", "bad build") is True
    cv.run_until_idle()
    assert states(cv, "1.0.0") == {"dev": "recalled", "qa": "recalled", "prod": "skipped"}
    assert deployed(cv, "qa") == "1.0.0"  # nothing to go back to: left, and said so
    assert [e.subject for e in audit_events(cv, "recall.no-rollback")] == [
        "shop@1.0.0/dev",
        "shop@1.0.0/qa",
    ]


def test_an_undeclared_entity_is_refused_unless_registration_is_allowed(cv: Conveyor) -> None:
    apply_yaml(cv, DEFS)
    with pytest.raises(DefinitionError, match="unknown entity 'qa-north' in qa"):
        cv.report_health("qa", "qa-north", "pod-1", True, "HEALTHY", "1.0.0")
    # dev declares no entities: they register on their first report.
    assert cv.report_health("dev", "dev-1", "pod-1", True, "HEALTHY", "1.0.0") is True


def test_a_recall_is_not_delayed_by_a_longer_gate_beside_it(
    cv: Conveyor, clock: ManualClock
) -> None:
    apply_yaml(cv, SLOW)
    start(cv, "1.0.0")
    reported = clock.now()
    cv.report_health("qa", "qa-west", "pod-1", True, "ERROR", "1.0.0")
    cv.run_until_idle()
    view = cv.show("shop@1.0.0")
    assert view.status == "recalled"
    assert view.finished_at == reported + 30 * timedelta(minutes=1)


def test_a_passing_canary_still_recalls_on_time_while_another_gate_waits(
    cv: Conveyor, clock: ManualClock
) -> None:
    quick_promotion = SLOW.replace(
        "promoteWhenHealthy: {entities: 1, soak: 2h}", "promoteWhenHealthy: {entities: 1}"
    )
    assert quick_promotion != SLOW
    apply_yaml(cv, quick_promotion)
    # Reported before the release starts, so they are there before the 3h soak can pass.
    reported = clock.now()
    cv.report_health("qa", "qa-east", "pod-1", True, "HEALTHY", "1.0.0")
    cv.report_health("qa", "qa-west", "pod-1", True, "ERROR", "1.0.0")
    start(cv, "1.0.0")
    # qa-east promotes at once, so the canary passes; qa-west turns it at 30m, not at 3h.
    view = cv.show("shop@1.0.0")
    assert view.status == "recalled"
    assert view.finished_at == reported + 30 * timedelta(minutes=1)


def test_health_pulled_by_a_probe_promotes(
    cv: Conveyor, clock: ManualClock, server: Server
) -> None:
    url = server.route("/healthz", 200, {"status": "ok"})
    probed = DEFS.replace(
        "    - {name: qa-west}\n",
        "    - {name: qa-west}\n"
        "  health:\n"
        f"    probes: [{{entity: qa-east, url: '{url}', field: status,"
        " fieldStates: {ok: HEALTHY}}]\n",
    )
    assert probed != DEFS
    apply_yaml(cv, probed)
    start(cv, "1.0.0")  # dev and qa deployed; prod waits on the canary
    probed_at = clock.now()
    (status,) = cv.engine.probe_due()
    # No versionField: the version is what was deployed in qa last.
    assert status.message.endswith("reported as version 1.0.0"), status.message
    cv.run_until_idle()
    prod = node(cv, "1.0.0", "prod")
    assert prod.state == "succeeded" and prod.started_at == probed_at + 2 * H


def test_what_runs_in_an_environment_follows_recalls(cv: Conveyor, clock: ManualClock) -> None:
    apply_yaml(cv, DEFS)
    with pytest.raises(NotFound, match="no release has succeeded in prod yet"):
        cv.running("prod")
    promote(cv, clock, "1.0.0")
    promote(cv, clock, "1.1.0")
    assert cv.running("prod") == "shop@1.1.0"
    cv.recall("shop@1.1.0", "bad")
    cv.run_until_idle()
    assert cv.running("prod") == "shop@1.0.0"
