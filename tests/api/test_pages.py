"""The pages, over HTTP against `conveyor serve`: log in with a token, what runs where, a
release waiting for an approval that only an approver sees a button for, CSRF on forms
(issue 12)."""

from __future__ import annotations

import re

import httpx

from conveyor.engine.service import Conveyor
from conveyor.store.db import open_store
from tests.api.conftest import Api
from tests.api.test_api import WEB, states, until


def browser(api: Api) -> httpx.Client:
    return httpx.Client(base_url=api.url, trust_env=False, timeout=30)


def log_in(client: httpx.Client, api: Api, who: str) -> None:
    answer = client.post("/login", data={"token": api.tokens[who], "next": "/"})
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    cookie = answer.headers.get_list("set-cookie")
    assert any("conveyor_session=" in c and "HttpOnly" in c and "SameSite=lax" in c for c in cookie)


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def test_pages_need_a_login_and_a_bad_token_is_refused(api: Api) -> None:
    with browser(api) as anonymous:
        home = anonymous.get("/")
        assert home.status_code == 303 and home.headers["location"] == "/login?next=/"
        form = anonymous.get("/login")
        assert '<label for="token">API token</label>' in form.text
        wrong = anonymous.post("/login", data={"token": "cvt_nope", "next": "/"})
        assert wrong.status_code == 401 and "unknown, expired or revoked" in wrong.text
        assert "conveyor_session" not in wrong.headers.get("set-cookie", "")
        assert anonymous.get("/static/conveyor.css").status_code == 200


def test_an_approver_approves_from_the_release_page(api: Api) -> None:
    with api.client("ci") as ci:
        body = {"product": "shop", "version": "7.0.0", "artifacts": WEB}
        ci.post("/api/v1/releases", json=body).raise_for_status()
        ci.post("/api/v1/releases/shop@7.0.0/trigger", json={"flow": "main"}).raise_for_status()
        until("qa waiting", lambda: states(ci, "shop@7.0.0").get("qa") == "waiting")

    with browser(api) as promoter:
        log_in(promoter, api, "ci")
        page = promoter.get("/releases/shop@7.0.0").text
        assert 'data-environment="qa"' in page and "approval: 0/1 from group qa-leads" in page
        assert "Approve</button>" not in page  # a promoter is no approver
        home = promoter.get("/").text
        assert '<a href="/releases/shop@7.0.0">7.0.0</a>' in home

    with browser(api) as ada:
        log_in(ada, api, "ada")
        page = ada.get("/releases/shop@7.0.0").text
        assert "Approve</button>" in page and "Reject</button>" in page
        forged = ada.post("/releases/shop@7.0.0/qa/approve", data={"csrf": "x", "comment": ""})
        assert forged.status_code == 403
        done = ada.post(
            "/releases/shop@7.0.0/qa/approve", data={"csrf": csrf_of(page), "comment": "ok"}
        )
        assert done.status_code == 303 and done.headers["location"] == "/releases/shop@7.0.0"
        until("succeeded", lambda: "status succeeded" in ada.get("/releases/shop@7.0.0").text)
        logout = ada.post("/logout", data={"csrf": csrf_of(page)})
        assert logout.status_code == 303
        assert ada.get("/").status_code == 303


def test_the_release_view_changes_live_without_a_reload(api: Api) -> None:
    """The page's event stream sends the release's environments again when they change."""
    with api.client("ci") as ci:
        body = {"product": "shop", "version": "7.1.0", "artifacts": WEB}
        ci.post("/api/v1/releases", json=body).raise_for_status()
        ci.post("/api/v1/releases/shop@7.1.0/trigger", json={"flow": "main"}).raise_for_status()
        until("qa waiting", lambda: states(ci, "shop@7.1.0").get("qa") == "waiting")
    with browser(api) as viewer, api.client("ada") as ada:
        log_in(viewer, api, "ci")
        page = viewer.get("/releases/shop@7.1.0").text
        assert 'data-live="/releases/shop@7.1.0/events"' in page and "/static/live.js" in page
        events: list[str] = []
        with viewer.stream("GET", "/releases/shop@7.1.0/events", timeout=30) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            data: list[str] = []
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    data.append(line.removeprefix("data: "))
                elif not line and data:
                    events.append("\n".join(data))
                    data = []
                    if len(events) == 1:
                        assert 'class="node waiting" data-environment="qa"' in events[0]
                        ada.post("/api/v1/promotions/shop@7.1.0/qa/approve", json={})
                    elif "status succeeded" in events[-1]:
                        break
                assert len(events) < 20, events
        assert 'class="status succeeded"' in events[-1]


def test_a_password_login_lasts_until_logout_and_goes_only_to_paths_here(api: Api) -> None:
    admin = Conveyor(open_store(f"sqlite:///{api.db}"), actor="local:setup")
    admin.set_password("ada", "ada's long passphrase")
    admin.close()
    with browser(api) as visitor:
        wrong = visitor.post("/login", data={"user": "ada", "password": "nope", "next": "/"})
        assert wrong.status_code == 401 and "wrong user name or password" in wrong.text
        answer = visitor.post(
            "/login",
            data={"user": "ada", "password": "ada's long passphrase", "next": "//evil.example"},
        )
        assert answer.status_code == 303 and answer.headers["location"] == "/"
        home = visitor.get("/")
        assert home.status_code == 200 and ">ada<" in home.text
        session = visitor.cookies["conveyor_session"]
        visitor.post("/logout", data={"csrf": csrf_of(home.text)})
        # The session's token is revoked, not just forgotten by this browser.
    with browser(api) as thief:
        thief.cookies.set("conveyor_session", session)
        assert thief.get("/").status_code == 303
