"""The API's other routes: one promotion and its logs, an environment's windows and
entities, definition revisions with diffs, and the admin's users, grants and tokens."""

from __future__ import annotations

from tests.api.conftest import Api
from tests.api.test_api import WEB, states, until


def test_a_promotion_its_logs_and_the_environment_around_it(api: Api) -> None:
    with api.client("ci") as ci:
        assert (
            ci.post(
                "/api/v1/releases", json={"product": "shop", "version": "5.1.0", "artifacts": WEB}
            ).status_code
            == 201
        )
        ci.post("/api/v1/releases/shop@5.1.0/trigger", json={"flow": "main"})
        until("dev done", lambda: states(ci, "shop@5.1.0").get("dev") == "succeeded")
        dev = ci.get("/api/v1/promotions/shop@5.1.0/dev").json()
        assert dev["environment"] == "dev" and dev["state"] == "succeeded"
        assert [t["task"] for t in dev["tasks"]] == ["ok"]
        logs = ci.get("/api/v1/promotions/shop@5.1.0/dev/logs")
        assert logs.headers["content-type"].startswith("text/plain")
        assert "== step.deploy/ok (run) attempt 1: succeeded" in logs.text
        nowhere = ci.get("/api/v1/promotions/shop@5.1.0/prod")
        assert nowhere.status_code == 404 and "no promotion to prod" in nowhere.json()["detail"]
        window = ci.get("/api/v1/environments/dev/windows").json()
        assert window["environment"] == "dev" and window["open"] is True
    report = {"environment": "dev", "entity": "cart", "node": "n1", "version": "5.1.0"}
    with api.client("probe") as probe:
        assert probe.post("/api/v1/health/reports", json=report).status_code == 201
    with api.client("ci") as ci:
        found = ci.get("/api/v1/environments/dev/entities", params={"release": "shop@5.1.0"})
        cart = next(e for e in found.json() if e["entity"] == "cart")
        assert cart["firstSeen"] is not None and cart["healthyThreshold"] == 0.95


def test_revisions_carry_their_diffs(api: Api) -> None:
    env = "apiVersion: conveyor.dev/v1\nkind: Environment\nmetadata: {name: staging}\n"
    with api.client("root") as root:
        for kind in ("non-production", "production"):
            body = f"{env}spec: {{type: {kind}}}\n".encode()
            assert root.post("/api/v1/definitions", content=body).status_code == 200
        history = root.get("/api/v1/definitions/env/staging/revisions").json()
        assert [r["revision"] for r in history] == [1, 2]
        assert history[0]["diff"].startswith("--- /dev/null")
        assert "-  type: non-production\n+  type: production\n" in history[1]["diff"]
        missing = root.get("/api/v1/definitions/env/nowhere/revisions")
        assert missing.status_code == 404


def test_users_grants_and_tokens_are_an_admins(api: Api) -> None:
    with api.client("root") as root, api.client("ci") as ci:
        assert ci.get("/api/v1/users").status_code == 403
        assert "needs admin" in ci.get("/api/v1/tokens").json()["detail"]
        made = root.post("/api/v1/users", json={"name": "bo", "groups": ["sre"]})
        assert made.status_code == 201
        assert {"name": "bo", "groups": ["sre"]} in root.get("/api/v1/users").json()
        granted = root.post(
            "/api/v1/grants",
            json={"role": "viewer", "subject": "group:sre", "environments": ["dev"]},
        ).json()
        assert any(g["id"] == granted["id"] for g in root.get("/api/v1/grants").json())
        token = root.post("/api/v1/tokens", json={"user": "bo", "description": "laptop"}).json()
        with api.client(None) as bo:
            mine = {"Authorization": f"Bearer {token['token']}"}
            assert bo.get("/api/v1/whoami", headers=mine).json()["groups"] == ["sre"]
            listed = [t for t in root.get("/api/v1/tokens").json() if t["id"] == token["id"]]
            assert listed[0]["revokedAt"] is None and "token" not in listed[0]
            assert root.delete(f"/api/v1/tokens/{token['id']}").status_code == 200
            assert bo.get("/api/v1/whoami", headers=mine).status_code == 401
        assert root.delete(f"/api/v1/grants/{granted['id']}").status_code == 200
        assert root.delete("/api/v1/users/bo").status_code == 200


def test_a_scoped_role_looks_at_its_environments_only(api: Api) -> None:
    with api.client("ci") as ci:
        ci.post("/api/v1/releases", json={"product": "shop", "version": "5.2.0", "artifacts": WEB})
        ci.post("/api/v1/releases/shop@5.2.0/trigger", json={"flow": "main"})
        until("dev done", lambda: states(ci, "shop@5.2.0").get("dev") == "succeeded")
        assert {r["environment"] for r in ci.get("/api/v1/status").json()} >= {"dev", "qa"}
    with api.client("ada") as ada:  # an approver over qa
        assert {r["environment"] for r in ada.get("/api/v1/status").json()} <= {"qa"}
        refused = ada.get("/api/v1/promotions/shop@5.2.0/dev")
        assert refused.status_code == 403 and "may not look at dev" in refused.json()["detail"]
        assert ada.get("/api/v1/environments/dev/windows").status_code == 403
        assert ada.get("/api/v1/environments/qa/windows").status_code == 200
