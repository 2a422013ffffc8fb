"""The `http` action against a small Argo CD look-alike on 127.0.0.1."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from conveyor.actions.base import ActionContext
from conveyor.actions.http import HttpAction, HttpSettings
from conveyor.clock import ManualClock
from conveyor.engine.registry import default_registry
from conveyor.engine.service import Conveyor
from conveyor.errors import DefinitionError, TerminalError, TransientError
from conveyor.store.db import open_store
from conveyor.store.tables import AuditRow, TaskRunRow
from tests.actions.argo import TOKEN, Argo, Server
from tests.conftest import BASE, DIGEST, apply_yaml


@pytest.fixture
def argo(clock: ManualClock) -> Argo:
    return Argo(clock)


@pytest.fixture
def server(argo: Argo, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ARGOCD_TOKEN", TOKEN)
    monkeypatch.setenv("CONVEYOR_SECRET_ENV", "OTHER, ARGOCD_TOKEN")
    srv = Server(argo)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


AUTH = {"Authorization": "Bearer ${env:ARGOCD_TOKEN}"}


def context(tmp_path: Path, raw: dict[str, Any], env: str = "dev") -> ActionContext:
    return ActionContext(
        raw=raw, template={"environment": {"name": env}}, workdir=tmp_path, timeout_s=10
    )


def conveyor(tmp_path: Path, clock: ManualClock) -> Conveyor:
    store = open_store(f"sqlite:///{tmp_path / 'c.db'}")
    return Conveyor(store, clock, default_registry(plugins=False), "t", tmp_path)


def policy(tasks: str) -> str:
    return f"""
---
apiVersion: conveyor.dev/v1
kind: PromotionFlow
metadata: {{name: main}}
spec: {{version: "1.00", product: shop, triggerEnvironment: dev}}
---
apiVersion: conveyor.dev/v1
kind: PromotionPolicy
metadata: {{name: all}}
spec:
  workflow:
    steps:
{tasks}
"""


def sync_and_wait(base: str, timeout: str = "10m", headers: bool = True) -> str:
    auth = 'headers: {Authorization: "Bearer ${env:ARGOCD_TOKEN}"}' if headers else ""
    app = base + "/shop-${{ environment.name }}"
    return policy(f"""
      - name: sync
        tasks:
          - name: start-sync
            uses: http
            retries: 2
            with: {{method: POST, url: "{app}/sync", json: {{prune: true}}, {auth}}}
      - name: wait
        tasks:
          - name: wait-healthy
            uses: http
            retries: 0
            with:
              url: "{app}"
              {auth}
              until:
                interval: 10s
                timeout: {timeout}
                conditions:
                  - {{path: status.sync.status, equals: Synced}}
                  - {{path: status.health.status, in: [Healthy]}}
""")


def promote(cv: Conveyor, defs: str) -> None:
    apply_yaml(cv, BASE + defs)
    cv.create_release("shop", "1.0.0", {"web": f"registry.local/web@{DIGEST}"})
    cv.trigger("main", "shop@1.0.0")


def test_a_sync_request_succeeds(tmp_path: Path, server: Server, argo: Argo) -> None:
    raw = {"method": "post", "url": f"{server.url}/shop/sync", "headers": AUTH, "json": {}}
    result = HttpAction().run(context(tmp_path, raw))
    assert result.ok, result.summary
    assert result.summary == f"POST {server.url}/shop/sync -> 200"
    assert argo.requests == [("POST", "/api/v1/applications/shop/sync")]
    assert TOKEN not in result.output and "Bearer ***" in result.output  # the echo is scrubbed


def test_polls_through_the_engine_until_synced_and_healthy(
    tmp_path: Path, server: Server, argo: Argo, clock: ManualClock
) -> None:
    cv = conveyor(tmp_path, clock)
    promote(cv, sync_and_wait(server.url))
    start, began = clock.now(), time.monotonic()
    idle_polls = 0
    for _ in range(500):  # run_until_idle, checking that no thread waits between polls
        outcome = cv.engine.run_pass()
        if outcome.moved:
            continue
        if outcome.inflight:
            cv.engine.wake.wait(5)
            continue
        if outcome.next_at is None:
            break
        (_, wait) = cv.show("shop@1.0.0").nodes[0].tasks
        assert wait.status == "polling" and cv.engine.runner.inflight == 0
        assert outcome.next_at == clock.now() + timedelta(seconds=10)
        idle_polls += 1
        clock.sleep_until(outcome.next_at, cv.engine.wake)

    view = cv.show("shop@1.0.0")
    assert view.status == "succeeded", view.nodes[0].tasks
    sync, wait = view.nodes[0].tasks
    assert sync.status == wait.status == "succeeded" and wait.attempt == 1
    polls = len(argo.get_times)
    assert polls == 4 and idle_polls == polls - 1  # OutOfSync x2, then Progressing, Healthy
    assert argo.get_times == [start + timedelta(seconds=10 * i) for i in range(polls)]
    assert clock.now() - start == timedelta(seconds=10) * (polls - 1)
    assert time.monotonic() - began < 10  # 30s of engine time, no real waiting
    assert ("POST", "/api/v1/applications/shop-dev/sync") in argo.requests  # templated URL
    cv.close()


def test_until_times_out_naming_the_condition(
    tmp_path: Path, server: Server, argo: Argo, clock: ManualClock
) -> None:
    argo.ready_after = 1000
    cv = conveyor(tmp_path, clock)
    promote(cv, sync_and_wait(server.url, timeout="30s"))
    start = clock.now()
    cv.engine.run_until_idle(max_passes=500)
    (_, wait) = cv.show("shop@1.0.0").nodes[0].tasks
    assert wait.status == "failed" and wait.attempt == 1
    assert wait.error == (
        'timed out after 30s: condition status.sync.status equals "Synced" did not hold '
        '(last value: "OutOfSync")'
    )
    assert len(argo.get_times) == 4  # at 0, 10, 20 and 30 seconds
    assert clock.now() - start == timedelta(seconds=30)
    cv.close()


def test_without_a_token_401_fails_at_once(
    tmp_path: Path, server: Server, argo: Argo, clock: ManualClock
) -> None:
    cv = conveyor(tmp_path, clock)
    promote(cv, sync_and_wait(server.url, headers=False))
    cv.engine.run_until_idle(max_passes=500)
    view = cv.show("shop@1.0.0")
    (sync,) = view.nodes[0].tasks
    assert view.status == "failed"
    assert sync.status == "failed" and sync.attempt == 1  # retries: 2, but 401 is terminal
    assert sync.error.startswith(f"POST {server.url}/shop-dev/sync -> 401, expected 2xx")
    assert len(argo.requests) == 1
    cv.close()


def test_the_token_never_reaches_output_errors_or_the_audit_log(
    tmp_path: Path, server: Server, argo: Argo, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    cv = conveyor(tmp_path, clock)
    promote(cv, sync_and_wait(server.url))
    cv.engine.run_until_idle(max_passes=500)
    assert cv.show("shop@1.0.0").status == "succeeded"
    # A wrong token is echoed back by the server in its 401 answer, and scrubbed.
    monkeypatch.setenv("ARGOCD_TOKEN", TOKEN + "-old")
    raw = {"method": "POST", "url": f"{server.url}/shop/sync", "headers": AUTH}
    result = HttpAction().run(context(tmp_path, raw))
    assert not result.ok and not result.retryable and "-old" not in result.output + result.summary
    assert "invalid session: 'Bearer ***'" in result.summary

    view = cv.show("shop@1.0.0")
    texts = [t.output + t.error for n in view.nodes for t in n.tasks]
    assert any("Bearer ***" in t for t in texts)  # the sync's echo, scrubbed
    with cv.store.session() as s:
        audit = [
            json.dumps([a.action, a.subject, a.before, a.after], default=str)
            for a in s.scalars(select(AuditRow))
        ]
        runs = [r.output + (r.error or "") for r in s.scalars(select(TaskRunRow))]
    assert audit and runs
    assert not [t for t in texts + audit + runs if TOKEN in t]
    cv.close()
    assert TOKEN.encode() not in (tmp_path / "c.db").read_bytes()


def test_a_500_is_retried(tmp_path: Path, server: Server, argo: Argo, clock: ManualClock) -> None:
    argo.fail_next = 2
    cv = conveyor(tmp_path, clock)
    promote(cv, sync_and_wait(server.url))
    cv.engine.run_until_idle(max_passes=500)
    view = cv.show("shop@1.0.0")
    sync, _ = view.nodes[0].tasks
    assert view.status == "succeeded"
    assert sync.status == "succeeded" and sync.attempt == 3  # two 500s, then the sync
    assert [r for r in argo.requests if r[0] == "POST"] == [
        ("POST", "/api/v1/applications/shop-dev/sync")
    ] * 3
    cv.close()


def test_5xx_and_transport_errors_are_retryable_4xx_not(
    tmp_path: Path, server: Server, argo: Argo
) -> None:
    argo.fail_next = 1
    raw = {"url": f"{server.url}/shop", "headers": AUTH}
    result = HttpAction().run(context(tmp_path, raw))
    assert not result.ok and result.retryable and "-> 500" in result.summary
    result = HttpAction().run(context(tmp_path, {**raw, "url": f"{server.url}/a/b/c"}))
    assert not result.ok and not result.retryable and "-> 404" in result.summary
    port = server.server_address[1]
    server.shutdown()
    server.server_close()
    with pytest.raises(TransientError, match="ConnectError"):
        HttpAction().run(context(tmp_path, {**raw, "url": f"http://127.0.0.1:{port}/x"}))


def test_a_templated_url_names_the_environment(tmp_path: Path, server: Server, argo: Argo) -> None:
    raw = {"url": server.url + "/shop-${{ environment.name }}", "headers": AUTH}
    assert HttpAction().run(context(tmp_path, raw, env="prod-eu")).ok
    assert argo.requests == [("GET", "/api/v1/applications/shop-prod-eu")]


def test_conditions_paths_in_and_exists(tmp_path: Path, server: Server, argo: Argo) -> None:
    def run(*conditions: dict[str, Any]) -> tuple[bool, str]:
        raw = {"url": f"{server.url}/shop", "headers": AUTH, "conditions": list(conditions)}
        result = HttpAction().run(context(tmp_path, raw))
        return result.ok, result.summary

    assert run(
        {"path": "status.resources[0].kind", "equals": "Deployment"},
        {"path": "status.health.status", "in": ["Progressing", "Healthy"]},
        {"path": "status.operationState", "exists": False},
        {"path": "metadata.name", "exists": True},
    ) == (True, f"GET {server.url}/shop -> 200: conditions hold")
    ok, summary = run({"path": "status.resources[1].kind", "exists": True})
    assert not ok and summary.endswith(
        "status.resources[1].kind exists does not hold (value: (missing))"
    )
    ok, summary = run({"path": "status.sync.status", "equals": "Synced"})
    assert not ok and 'equals "Synced" does not hold (value: "OutOfSync")' in summary


def test_a_header_variable_that_is_not_set_is_terminal(
    tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ARGOCD_TOKEN")
    with pytest.raises(TerminalError, match=r"environment variable ARGOCD_TOKEN .* is not set"):
        HttpAction().run(context(tmp_path, {"url": f"{server.url}/shop", "headers": AUTH}))


def test_only_variables_the_operator_declared_can_be_read(
    tmp_path: Path, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_DATABASE_URL", "postgresql://conveyor:s3cret@db/conveyor")
    headers = {"Authorization": "Bearer ${env:CONVEYOR_DATABASE_URL}"}
    with pytest.raises(TerminalError, match=r"CONVEYOR_DATABASE_URL .* is not declared") as err:
        HttpAction().run(context(tmp_path, {"url": f"{server.url}/shop", "headers": headers}))
    assert "s3cret" not in str(err.value)
    monkeypatch.delenv("CONVEYOR_SECRET_ENV")
    with pytest.raises(TerminalError, match=r"ARGOCD_TOKEN .* is not declared"):
        HttpAction().run(context(tmp_path, {"url": f"{server.url}/shop", "headers": AUTH}))


def test_a_templated_value_cannot_read_the_environment(
    tmp_path: Path, server: Server, argo: Argo
) -> None:
    raw = {
        "url": f"{server.url}/shop",
        "headers": {"Authorization": "Bearer ${{ environment.name }}"},
    }
    ctx = context(tmp_path, raw, env="${env:ARGOCD_TOKEN}")  # a hostile value
    result = HttpAction().run(ctx)
    assert not result.ok and "-> 401" in result.summary  # sent as text, no token read
    assert "invalid session: 'Bearer ${env:ARGOCD_TOKEN}'" in result.summary


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"url": "ftp://example.com/x"}, "only http:// and https://"),
        ({"url": "http://h/${env:ARGOCD_TOKEN}"}, "only header values may read the environment"),
        ({"url": "http://h", "headers": {"A": "${env:bad-name}"}}, "write a variable as"),
        ({"url": "http://h", "body": "x", "json": {}}, "not both"),
        ({"url": "http://h", "conditions": [{"path": "a..b", "equals": 1}]}, "is not a path"),
        ({"url": "http://h", "conditions": [{"path": "a", "equals": 1, "exists": True}]}, "one of"),
        ({"url": "http://h", "until": {"conditions": [], "interval": "10s"}}, "at least 1 item"),
        ({"url": "http://h", "method": "BREW"}, "Input should be 'GET', 'HEAD'"),
        ({"url": "http://h", "timeout": "0s"}, "timeout is at least 1s"),
        (
            {
                "url": "http://h",
                "until": {"conditions": [{"path": "a", "exists": True}], "interval": "0s"},
            },
            "interval is at least 1s",
        ),
        (
            {
                "url": "http://h",
                "until": {"conditions": [{"path": "a", "exists": True}], "timeout": "2d"},
            },
            "timeout 2d is over its limit of 1d",
        ),
    ],
)
def test_bad_settings_are_refused(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        HttpSettings.model_validate(settings)


def test_bad_settings_are_refused_at_apply(tmp_path: Path, clock: ManualClock) -> None:
    cv = conveyor(tmp_path, clock)
    bad = policy("""
      - name: sync
        tasks:
          - {name: s, uses: http, with: {url: "file:///etc/passwd"}}
""")
    with pytest.raises(DefinitionError, match="only http:// and https://"):
        apply_yaml(cv, BASE + bad)
    cv.close()


def test_credentials_in_the_query_string_are_kept_out_of_the_output(
    tmp_path: Path, server: Server
) -> None:
    query = "?token=t0k3n-value&X-Amz-Signature=abc123sig&page=2"
    raw = {"method": "post", "url": f"{server.url}/shop/sync{query}", "headers": AUTH, "json": {}}
    result = HttpAction().run(context(tmp_path, raw))
    for where in (result.output, result.summary):
        assert "t0k3n-value" not in where and "abc123sig" not in where
        assert "token=***" in where and "X-Amz-Signature=***" in where and "page=2" in where
