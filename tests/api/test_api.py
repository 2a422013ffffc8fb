"""The REST API over HTTP, against `conveyor serve` on loopback: who may call what (401 and
403 with the role named), problem details for bad input, and a release promoted through
the API with an approval (issue 12)."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.api.conftest import Api
from tests.conftest import DIGEST

WEB = {"web": f"registry.local/web@{DIGEST}"}


def until(what: str, check: Any, seconds: float = 30) -> Any:
    """Poll `check` until it returns something true (bounded); the engine runs beside."""
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def states(client: httpx.Client, ref: str) -> dict[str, str]:
    view = client.get(f"/api/v1/releases/{ref}").json()
    return {n["environment"]: n["state"] for level in view["levels"] for n in level}


def test_health_and_metrics_answer_without_credentials_the_api_does_not(api: Api) -> None:
    with api.client(None) as anonymous:
        assert anonymous.get("/healthz").json() == {"status": "ok"}
        assert anonymous.get("/readyz").json() == {"status": "ready"}
        assert "conveyor_releases" in anonymous.get("/metrics").text
        refused = anonymous.get("/api/v1/releases")
        assert refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["www-authenticate"].startswith("Bearer")
        problem = refused.json()
        assert problem["type"].endswith("/unauthenticated") and problem["status"] == 401
        assert "Authorization: Bearer" in problem["detail"]
        forged = anonymous.get("/api/v1/releases", headers={"Authorization": "Bearer cvt_nope"})
        assert forged.status_code == 401
        assert "unknown, expired or revoked" in forged.json()["detail"]
        spec = anonymous.get("/api/v1/openapi.json").json()
        assert "/api/v1/releases" in spec["paths"]


def test_who_may_read_and_write(api: Api) -> None:
    with api.client("ada") as ada, api.client("nobody") as nobody, api.client("ci") as ci:
        me = ada.get("/api/v1/whoami").json()
        assert me["user"] == "ada" and me["groups"] == ["qa-leads"]
        assert [(g["role"], g["scope"]) for g in me["grants"]] == [("approver", "environment qa")]
        looked = nobody.get("/api/v1/releases")
        assert looked.status_code == 403
        assert "nobody may not look" in looked.json()["detail"]
        created = ada.post("/api/v1/releases", json={"product": "shop", "version": "0.0.1"})
        assert created.status_code == 403
        assert "needs the role promoter over every environment" in created.json()["detail"]
        applied = ci.post("/api/v1/definitions", content=b"kind: Product\n")
        assert applied.status_code == 403 and "role admin" in applied.json()["detail"]


def test_bad_bodies_are_problems_with_where(api: Api) -> None:
    with api.client("ci") as ci, api.client("root") as root:
        missing = ci.post("/api/v1/releases", json={"product": "shop"})
        assert missing.status_code == 422
        assert missing.json()["problems"][0]["field"] == "body.version"
        unknown = ci.get("/api/v1/releases/shop@9.9.9")
        assert unknown.status_code == 404 and unknown.json()["type"].endswith("/not-found")
        bad = root.post(
            "/api/v1/definitions",
            content=b"apiVersion: conveyor.dev/v1\nkind: Environment\nmetadata: {name: x}\n"
            b"spec:\n  nope: 1\n",
            headers={"Content-Type": "application/yaml"},
        )
        assert bad.status_code == 422
        (problem,) = bad.json()["problems"]
        assert (problem["file"], problem["line"], problem["field"]) == (
            "<request>",
            5,
            "spec.nope",
        )
        assert root.get("/api/v1/definitions/env/x").status_code == 404  # nothing applied


def test_a_release_through_the_api_with_an_approval(api: Api) -> None:
    with api.client("ci") as ci, api.client("ada") as ada, api.client("probe") as probe:
        created = ci.post(
            "/api/v1/releases", json={"product": "shop", "version": "1.0.0", "artifacts": WEB}
        )
        assert created.status_code == 201 and created.json()["status"] == "created"
        again = ci.post(
            "/api/v1/releases", json={"product": "shop", "version": "1.0.0", "artifacts": WEB}
        )
        assert again.status_code == 409
        ci.post("/api/v1/releases/shop@1.0.0/trigger", json={"flow": "main"}).raise_for_status()
        until("qa waiting", lambda: states(ci, "shop@1.0.0").get("qa") == "waiting")
        waiting = ada.get("/api/v1/approvals").json()
        assert [w["promotion"] for w in waiting] == ["shop@1.0.0/qa"]

        refused = ci.post("/api/v1/promotions/shop@1.0.0/qa/approve", json={})
        assert refused.status_code == 403 and "role approver" in refused.json()["detail"]
        approved = ada.post("/api/v1/promotions/shop@1.0.0/qa/approve", json={"comment": "ok"})
        assert approved.json() == {"approved": "shop@1.0.0/qa"}
        until(
            "success", lambda: ci.get("/api/v1/releases/shop@1.0.0").json()["status"] == "succeeded"
        )

        report = {"environment": "dev", "entity": "web", "node": "p1", "version": "1.0.0"}
        assert probe.post("/api/v1/health/reports", json=report).json() == {
            "received": 1,
            "stored": 1,
        }
        batch = {"reports": [report | {"node": f"p{i}", "state": "HEALTHY"} for i in range(2, 5)]}
        assert probe.post("/api/v1/health/reports", json=batch).json()["stored"] == 3
        bad = {"reports": [report | {"node": "p9"}, report | {"node": "p10", "state": "FINE"}]}
        refused_batch = probe.post("/api/v1/health/reports", json=bad)
        assert refused_batch.status_code == 422
        assert refused_batch.json()["problems"][0]["file"] == "reports[1]"
        retried = probe.post("/api/v1/health/reports", json={"reports": bad["reports"][:1]})
        assert retried.json()["stored"] == 1  # the refused batch stored nothing
        elsewhere = probe.post("/api/v1/health/reports", json=report | {"environment": "qa"})
        assert elsewhere.status_code == 403 and "role reporter" in elsewhere.json()["detail"]

        log = ci.get("/api/v1/audit", params={"actor": "ada"}).json()
        assert [e["action"] for e in log] == ["promotion.approve"]
        assert ci.get("/api/v1/audit/verify").json()["intact"] is True
