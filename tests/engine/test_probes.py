"""Health probes declared on an environment, against HTTP servers on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from conveyor.clock import ManualClock
from conveyor.engine import claims
from conveyor.engine.lease import HOST
from conveyor.engine.probes import Prober
from conveyor.engine.service import Conveyor
from conveyor.model.definitions import EnvironmentSpec
from conveyor.store.tables import EngineLeaseRow, HealthReportRow
from tests.conftest import BASE, DIGEST, apply_yaml
from tests.gitrepos import free_port
from tests.httpserver import Server

FLOW = """
---
apiVersion: conveyor.dev/v1
kind: PromotionFlow
metadata: {name: main}
spec: {version: "1.00", product: shop, triggerEnvironment: dev}
"""
S = timedelta(seconds=1)


def probe(entity: str, url: str, **settings: Any) -> dict[str, Any]:
    return {"entity": entity, "url": url, **settings}


def environment(*probes: dict[str, Any]) -> str:
    spec = {"type": "non-production", "health": {"probes": list(probes)}}
    doc = {"apiVersion": "conveyor.dev/v1", "kind": "Environment", "spec": spec}
    return json.dumps({**doc, "metadata": {"name": "dev", "labels": {"tier": "dev"}}})


def setup(cv: Conveyor, *probes: dict[str, Any]) -> None:
    apply_yaml(cv, BASE + FLOW)
    apply_yaml(cv, environment(*probes))


def deploy(cv: Conveyor, version: str) -> None:
    """A release through a flow of one environment and no workflow: it succeeds in dev."""
    cv.create_release("shop", version, {"web": f"registry.local/web@{DIGEST}"})
    cv.trigger("main", f"shop@{version}")
    cv.run_until_idle()
    assert cv.show(f"shop@{version}").status == "succeeded"


def reports(cv: Conveyor) -> list[tuple[str, datetime, bool, str | None, str]]:
    with cv.store.session() as s:
        rows = s.scalars(select(HealthReportRow).order_by(HealthReportRow.id))
        return [(r.entity, r.time, r.live, r.state, r.version) for r in rows]


def test_status_codes_map_to_states(cv: Conveyor, clock: ManualClock, server: Server) -> None:
    setup(
        cv,
        probe("a", server.route("/ok", 200, b"fine")),
        probe("b", server.route("/busy", 503), statusStates={"503": "REPAIRING"}),
        probe("c", server.route("/broken", 500, b"oops")),
    )
    deploy(cv, "1.0.0")
    t0 = clock.now()
    cv.engine.probe_due()

    assert sorted(reports(cv)) == [
        ("a", t0, True, "HEALTHY", "1.0.0"),
        ("b", t0, True, "REPAIRING", "1.0.0"),
        ("c", t0, True, "ERROR", "1.0.0"),
    ]
    clock.advance(timedelta(hours=1))
    health = cv.health("dev", "shop", "1.0.0")
    assert (health["a"].current, health["a"].healthy) == ("healthy", timedelta(hours=1))
    assert (health["b"].current, health["b"].healthy, health["b"].unhealthy) == (
        "neither",
        timedelta(0),
        timedelta(0),
    )
    assert (health["c"].current, health["c"].unhealthy) == ("unhealthy", timedelta(hours=1))


def test_json_field_maps_the_state_and_names_the_version(
    cv: Conveyor, clock: ManualClock, server: Server
) -> None:
    answer = {"status": {"phase": "Degraded"}, "build": {"version": "v2.1.0"}}
    listed = {"checks": [{"state": "repairing"}], "version": "2.1.0"}
    setup(
        cv,
        probe(
            "mapped",
            server.route("/a", 200, answer),
            field="status.phase",
            fieldStates={"Degraded": "WARNING"},
            versionField="build.version",
        ),
        probe(
            "named",
            server.route("/b", 200, listed),
            field="checks[0].state",
            versionField="version",
        ),
        # The field is missing: the status code decides (503 mapped); the version is there.
        probe(
            "by-code",
            server.route("/c", 503, {"version": "2.1.0"}),
            field="status.phase",
            statusStates={"503": "SUSPENDED"},
            versionField="version",
        ),
        probe(
            "unknown",
            server.route("/d", 200, {"phase": "wobbly", "version": "2.1.0"}),
            field="phase",
            versionField="version",
        ),
        # No version in the answer and nothing deployed in dev: no report.
        probe("unversioned", server.route("/e", 200, {"phase": "HEALTHY"}), field="phase"),
    )
    t0 = clock.now()
    statuses = {s.entity: s for s in cv.engine.probe_due()}

    assert sorted(reports(cv)) == [
        ("by-code", t0, True, "SUSPENDED", "2.1.0"),
        ("mapped", t0, True, "WARNING", "2.1.0"),  # v2.1.0 is written as releases are
        ("named", t0, True, "REPAIRING", "2.1.0"),
        # An unmapped value counts neither way: not healthy, and no recall from a typo.
        ("unknown", t0, True, "WARNING", "2.1.0"),
    ]
    assert server.hits["/e"] == 1
    assert "report skipped: no release has succeeded in dev" in statuses["unversioned"].message
    assert "not a known state" in statuses["unknown"].message
    assert (statuses["mapped"].last_run, statuses["mapped"].next_due) == (t0, t0 + 30 * S)
    assert set(cv.health("dev", "shop", "2.1.0")) == {"by-code", "mapped", "named", "unknown"}


def test_no_connection_is_not_live_and_credentials_stay_out(
    cv: Conveyor, clock: ManualClock, server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()  # closed again: nothing answers there
    setup(
        cv,
        probe("gone", f"http://probe-user:hunter2pass@127.0.0.1:{port}/health?token=s3cr3tt0ken"),
        probe("up", server.route("/ok", 200).replace("://", "://u:pa55word@") + "?key=k3yvalue"),
    )
    deploy(cv, "1.0.0")
    t0 = clock.now()
    # The CLI sets httpx's own logger to WARNING: a CLI test run earlier would hide its lines.
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="httpx"):
        statuses = cv.engine.probe_due()

    assert sorted(reports(cv)) == [
        ("gone", t0, False, None, "1.0.0"),
        ("up", t0, True, "HEALTHY", "1.0.0"),
    ]
    gone, up = statuses
    assert gone.url == f"http://127.0.0.1:{port}/health?***"
    assert "ConnectError" in gone.message and "not live" in gone.message
    assert server.hits["/ok"] == 1 and up.message.startswith(f"GET {server.url('/ok')}?*** -> 200")
    assert server.auth == ["Basic " + base64.b64encode(b"u:pa55word").decode()]
    ours = [s.url + s.message for s in statuses]
    ours += [r.getMessage() for r in caplog.records if r.name.startswith("conveyor")]
    logged = [r.getMessage() for r in caplog.records]
    for secret in ("hunter2pass", "s3cr3tt0ken", "pa55word", "k3yvalue", "probe-user"):
        assert not [t for t in ours if secret in t], secret
    # httpx logs the URLs it requests (the CLI keeps it at WARNING); user info is not in them.
    assert any(f"127.0.0.1:{server.server_address[1]}/ok" in t for t in logged)
    for secret in ("hunter2pass", "pa55word", "probe-user"):
        assert not [t for t in logged if secret in t], secret


def test_a_probe_waits_for_its_interval(cv: Conveyor, clock: ManualClock, server: Server) -> None:
    setup(
        cv, probe("a", server.route("/ok", 200, {"v": "1.0.0"}), versionField="v", interval="30s")
    )
    t0 = clock.now()
    cv.engine.probe_due()
    cv.engine.probe_due()
    assert server.hits["/ok"] == 1
    clock.advance(29 * S)
    cv.engine.probe_due()
    assert server.hits["/ok"] == 1
    clock.advance(S)
    (status,) = cv.engine.probe_due()
    assert server.hits["/ok"] == 2
    assert [r[1] for r in reports(cv)] == [t0, t0 + 30 * S]
    assert status.next_due == t0 + 60 * S and not status.running


def test_the_version_is_the_release_deployed_there(
    cv: Conveyor, clock: ManualClock, server: Server
) -> None:
    setup(cv, probe("a", server.route("/ok", 200)))
    (status,) = cv.engine.probe_due()
    assert "report skipped" in status.message and reports(cv) == []

    clock.advance(30 * S)
    deploy(cv, "1.0.0")
    cv.engine.probe_due()
    clock.advance(30 * S)
    deploy(cv, "1.1.0")
    t1 = clock.now()
    (status,) = cv.engine.probe_due()

    assert [(r[0], r[4]) for r in reports(cv)] == [("a", "1.0.0"), ("a", "1.1.0")]
    assert status.message.endswith("reported as version 1.1.0")
    clock.advance(timedelta(minutes=10))
    a = cv.health("dev", "shop", "1.1.0")["a"]
    assert (a.first_seen, a.soak, a.current) == (t1, timedelta(minutes=10), "healthy")


def test_an_applied_change_takes_effect(cv: Conveyor, clock: ManualClock, server: Server) -> None:
    url = server.route("/ok", 200, {"v": "1.0.0"})
    setup(cv, probe("a", url, versionField="v"))
    cv.engine.probe_due()
    apply_yaml(cv, environment(probe("a", url, versionField="v", statusStates={"200": "WARNING"})))
    clock.advance(30 * S)
    cv.engine.probe_due()
    assert [r[3] for r in reports(cv)] == ["HEALTHY", "WARNING"]

    apply_yaml(cv, environment())
    clock.advance(30 * S)
    assert cv.engine.probe_due() == []
    assert server.hits["/ok"] == 2


def test_run_until_idle_never_probes_and_serve_does(
    cv: Conveyor, clock: ManualClock, server: Server
) -> None:
    setup(cv, probe("a", server.route("/ok", 200, {"v": "1.0.0"}), versionField="v"))
    outcome = cv.run_until_idle()
    assert outcome.next_at is None and server.hits["/ok"] == 0

    t0 = clock.now()
    server.target = 3
    thread = threading.Thread(target=cv.engine.serve, kwargs={"resync": timedelta(hours=1)})
    thread.start()
    try:
        assert server.reached.wait(15), "serve runs the probe again at each interval"
    finally:
        cv.engine.stop()
        thread.join(10)
    assert not thread.is_alive()
    # The manual clock jumps to each due time; the first answers are stored by later passes.
    assert [r[1] for r in reports(cv)][:2] == [t0, t0 + 30 * S]


def test_a_refused_probe_is_logged_once_and_skipped(
    cv: Conveyor, clock: ManualClock, server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    setup(
        cv,
        probe("ok", server.route("/ok", 200, {"v": "1.0.0"}), versionField="v"),
        probe("long", server.route("/long", 200, {"v": "9" * 150}), versionField="v"),
    )
    with caplog.at_level(logging.WARNING, "conveyor.engine.probes"):
        cv.engine.probe_due()
        clock.advance(30 * S)
        statuses = {s.entity: s for s in cv.engine.probe_due()}
    assert server.hits["/long"] == 2 and [r[0] for r in reports(cv)] == ["ok", "ok"]
    assert "report refused" in statuses["long"].message
    assert [r.getMessage() for r in caplog.records if "long" in r.getMessage()] == [
        f"probe dev/long: {statuses['long'].message}"
    ]


def test_an_unregistered_entity_is_skipped(
    clock: ManualClock, server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    spec = EnvironmentSpec.model_validate(
        {
            "entities": [{"name": "known"}],
            "health": {
                "allowRegistration": True,
                "probes": [probe("stranger", server.route("/ok", 200))],
            },
        }
    )
    # Stored before the rule was tightened: the definition no longer admits the probe.
    spec.health.allowRegistration = False
    prober = Prober(clock, threading.Event())
    with caplog.at_level(logging.WARNING, "conveyor.engine.probes"):
        assert prober.due({"dev": spec}, clock.now()) == []
        assert prober.due({"dev": spec}, clock.now()) == []
    (status,) = prober.statuses()
    assert "entity 'stranger' is not registered" in status.message
    assert len(caplog.records) == 1 and server.hits["/ok"] == 0


def test_engines_sharing_a_store_each_probe_their_share(
    cv: Conveyor, clock: ManualClock, server: Server
) -> None:
    """Two live engines: each probes the environments of its share, none twice. (On SQLite
    one engine is alone, and probes them all.)"""
    names = [f"env-{i}" for i in range(8)]
    for name in names:
        spec = {"health": {"probes": [probe("web", server.route("/health", 200, b"ok"))]}}
        doc = {"apiVersion": "conveyor.dev/v1", "kind": "Environment", "spec": spec}
        apply_yaml(cv, json.dumps({**doc, "metadata": {"name": name}}))
    with cv.store.session() as s:
        for owner in ("engine-a", "engine-b"):
            s.add(
                EngineLeaseRow(
                    owner=owner,
                    host=HOST,
                    pid=os.getpid(),  # alive: this process
                    mode="engine",
                    started_at=clock.now(),
                    renewed_at=clock.now(),
                    expires_at=clock.now() + timedelta(hours=1),
                )
            )
    probed = {}
    for owner in ("engine-a", "engine-b"):
        with cv.store.session() as s:  # what a pass of that engine claims
            claim = claims.claim(s, clock.now(), owner, cv.store.shared)
        prober = Prober(clock, threading.Event())
        prober.start_due(cv.store, clock.now(), claim.mine)
        prober.wait(10)
        probed[owner] = {status.environment for status in prober.statuses()}
    if cv.store.shared:
        assert probed["engine-a"] and probed["engine-b"]
        assert probed["engine-a"].isdisjoint(probed["engine-b"])
        assert probed["engine-a"] | probed["engine-b"] == set(names)
    else:
        assert probed["engine-a"] == probed["engine-b"] == set(names)
