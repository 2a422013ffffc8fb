"""Pages and filters on lists; ETags guarding definition writes (issue 12)."""

from __future__ import annotations

import httpx

from tests.api.conftest import Api
from tests.api.test_api import WEB

ENV = """apiVersion: conveyor.dev/v1
kind: Environment
metadata: {name: sandbox, labels: {tier: dev}}
spec: {type: non-production}
"""


def test_releases_come_a_page_at_a_time_with_filters(api: Api) -> None:
    with api.client("ci") as ci:
        for n in range(3):
            body = {"product": "shop", "version": f"5.0.{n}", "artifacts": WEB}
            ci.post("/api/v1/releases", json=body).raise_for_status()
        query = {"product": "shop", "status": "created", "since": "2000-01-01T00:00:00"}
        first = ci.get("/api/v1/releases", params=query | {"limit": 2})
        total = int(first.headers["X-Total-Count"])
        assert total >= 3 and len(first.json()) == 2
        assert all(r["status"] == "created" for r in first.json())
        following = httpx.URL(first.headers["Link"].split(">")[0].lstrip("<"))
        assert following.params["offset"] == "2"
        seen = [r["version"] for r in first.json()]
        while following:
            page = ci.get(following.raw_path.decode())
            seen += [r["version"] for r in page.json()]
            link = page.headers.get("Link")
            following = httpx.URL(link.split(">")[0].lstrip("<")) if link else None
        assert len(seen) == total and len(set(seen)) == total
        assert {"5.0.0", "5.0.1", "5.0.2"} <= set(seen)
        too_many = ci.get("/api/v1/releases", params={"limit": 5000})
        assert too_many.status_code == 422


def test_a_stale_etag_refuses_the_write(api: Api) -> None:
    with api.client("root") as root:
        yaml = {"Content-Type": "application/yaml"}
        root.post("/api/v1/definitions", content=ENV.encode(), headers=yaml).raise_for_status()
        got = root.get("/api/v1/definitions/env/sandbox")
        tag = got.headers["ETag"]
        assert tag == f'"Environment/sandbox/{got.json()["revision"]}"'
        changed = ENV.replace("tier: dev", "tier: test").encode()
        fresh = root.post("/api/v1/definitions", content=changed, headers=yaml | {"If-Match": tag})
        assert fresh.json() == [{"ref": "Environment/sandbox", "result": "configured"}]
        stale = root.post(
            "/api/v1/definitions", content=ENV.encode(), headers=yaml | {"If-Match": tag}
        )
        assert stale.status_code == 412
        assert stale.json()["type"].endswith("/precondition-failed")
        assert root.get("/api/v1/definitions/env/sandbox").json()["document"]["metadata"][
            "labels"
        ] == {"tier": "test"}
        refused = root.delete("/api/v1/definitions/env/sandbox", headers={"If-Match": tag})
        assert refused.status_code == 412
        now = root.get("/api/v1/definitions/env/sandbox").headers["ETag"]
        deleted = root.delete("/api/v1/definitions/env/sandbox", headers={"If-Match": now})
        assert deleted.status_code == 200
