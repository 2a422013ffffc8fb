"""Notification sinks: webhooks delivered to a receiver on loopback with a valid signature
and a delivery id, retried with backoff, filtered by event; apprise targets; refusals
(issue 11)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from conveyor.clock import ManualClock
from conveyor.engine.delivery import deliver_due
from conveyor.engine.service import Conveyor
from conveyor.errors import DefinitionError
from conveyor.store.tables import OutboxRow
from tests.conftest import BASE, DIGEST, apply_yaml, shop_flow
from tests.webhooks import Receiver

SECRET = "whsec-0f9a7c2e"

FLOW = (
    shop_flow("qa", "prod")
    + """
---
apiVersion: conveyor.dev/v1
kind: PromotionPolicy
metadata: {name: prod}
spec:
  selector: {environments: {names: [prod]}}
  workflow:
    steps:
      - name: deploy
        tasks: [{name: broken, uses: run, with: {args: ["false"]}}]
"""
)


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_SECRET_ENV", "HOOK_SECRET")
    monkeypatch.setenv("HOOK_SECRET", SECRET)


def sink(url: str, extra: str = "", name: str = "team") -> str:
    return f"""
---
apiVersion: conveyor.dev/v1
kind: NotificationSink
metadata: {{name: {name}}}
spec:
  webhook: {{url: "{url}", secretEnv: HOOK_SECRET}}
{extra}"""


def released(cv: Conveyor, sinks: str) -> str:
    apply_yaml(cv, BASE + FLOW + sinks)
    cv.create_release("shop", "1.0.0", {"web": f"registry.local/web@{DIGEST}"})
    cv.trigger("main", "shop@1.0.0")
    cv.run_until_idle()
    return "shop@1.0.0"


def outbox(cv: Conveyor) -> list[OutboxRow]:
    with cv.store.session() as s:
        return list(s.scalars(select(OutboxRow).order_by(OutboxRow.id)))


def test_promotions_reach_the_webhook_signed_with_a_delivery_id(
    cv: Conveyor, receiver: Receiver, secret_env: None
) -> None:
    released(cv, sink(receiver.url))

    assert receiver.events() == ["promotion.succeeded", "promotion.succeeded", "promotion.failed"]
    failed = receiver.got[-1]
    expected = hmac.new(SECRET.encode(), failed.body, hashlib.sha256).hexdigest()
    assert failed.headers["X-Conveyor-Signature"] == f"sha256={expected}"
    assert failed.headers["X-Conveyor-Event"] == "promotion.failed"
    assert failed.headers["X-Conveyor-Delivery"] == failed.doc["deliveryId"]
    assert len({r.doc["deliveryId"] for r in receiver.got}) == 3
    assert failed.doc["subject"] == "shop@1.0.0/prod"
    assert (failed.doc["product"], failed.doc["version"], failed.doc["environment"]) == (
        "shop",
        "1.0.0",
        "prod",
    )
    assert "broken" in json.dumps(failed.doc["details"])
    assert all(row.delivered_at is not None and row.attempts == 1 for row in outbox(cv))
    # the secret is nowhere in what was sent or stored
    assert SECRET not in failed.body.decode()
    assert all(SECRET not in json.dumps(row.payload) for row in outbox(cv))


def test_a_sink_gets_only_the_events_and_environments_it_asks_for(
    cv: Conveyor, receiver: Receiver, secret_env: None
) -> None:
    only = "  events: [promotion.succeeded, promotion.failed]\n  environments: [qa, prod]\n"
    released(cv, sink(receiver.url, only))
    assert [r.doc["environment"] for r in receiver.got] == ["qa", "prod"]


def test_a_failed_delivery_is_retried_with_backoff_under_the_same_id(
    cv: Conveyor, clock: ManualClock, receiver: Receiver, secret_env: None
) -> None:
    receiver.failures = 1
    released(cv, sink(receiver.url, "  events: [promotion.failed]\n"))
    (row,) = outbox(cv)
    assert (row.attempts, row.delivered_at) == (1, None)
    assert row.last_error == "the webhook answered HTTP 500"
    assert row.next_attempt_at > row.created_at
    assert deliver_due(cv.store, clock) == 0  # not due yet: nothing sent
    clock.advance(timedelta(seconds=2))

    assert deliver_due(cv.store, clock) == 1

    (row,) = outbox(cv)
    assert row.attempts == 2 and row.delivered_at is not None
    assert receiver.got[0].doc["deliveryId"] == row.payload["deliveryId"]


def test_a_secret_the_operator_did_not_declare_is_not_read(
    cv: Conveyor, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)  # present, but not in CONVEYOR_SECRET_ENV
    monkeypatch.delenv("CONVEYOR_SECRET_ENV", raising=False)
    released(cv, sink(receiver.url, "  events: [promotion.failed]\n"))
    (row,) = outbox(cv)
    assert receiver.got == []
    assert row.delivered_at is None
    assert row.last_error == (
        "secretEnv HOOK_SECRET is not declared in CONVEYOR_SECRET_ENV where the engine runs"
    )


def test_approval_requests_and_a_broken_audit_are_notified(
    cv: Conveyor, receiver: Receiver, secret_env: None
) -> None:
    gate = """
---
apiVersion: conveyor.dev/v1
kind: PromotionPolicy
metadata: {name: gate}
spec:
  selector: {environments: {names: [qa]}}
  gates: [{approval: {require: [{users: [erin]}]}}]
"""
    events = "  events: [approval.requested, audit.verify-failed]\n"
    released(cv, sink(receiver.url, events) + gate)
    assert receiver.events() == ["approval.requested"]
    assert receiver.got[0].doc["subject"] == "shop@1.0.0/qa"
    assert "erin" in receiver.got[0].doc["details"]["reason"]

    with cv.store.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE audit_events SET actor = 'mallory' WHERE id = 1")
    assert cv.verify_audit()[1]
    cv.run_until_idle()
    assert receiver.events() == ["approval.requested", "audit.verify-failed"]
    assert receiver.got[1].doc["details"]["first"].startswith("event 1: content")


def test_apprise_targets_are_read_from_a_declared_variable(
    cv: Conveyor, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # apprise's json:// target POSTs a JSON document: the same receiver stands in for chat.
    monkeypatch.setenv("CONVEYOR_SECRET_ENV", "CHAT_URL")
    monkeypatch.setenv("CHAT_URL", receiver.url.replace("http://", "json://"))
    chat = """
---
apiVersion: conveyor.dev/v1
kind: NotificationSink
metadata: {name: chat}
spec:
  events: [promotion.failed]
  apprise: {urlEnv: CHAT_URL}
"""
    released(cv, chat)
    (got,) = receiver.got
    assert got.doc["title"] == "Conveyor: promotion.failed shop@1.0.0/prod"
    assert "broken" in got.doc["message"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("webhook: {url: 'http://u:p@127.0.0.1/x'}", "must not hold credentials"),
        ("events: [promotion.lost]\n  webhook: {url: 'http://127.0.0.1/x'}", "spec.events[0]"),
        ("{}", "give exactly one of webhook or apprise"),
        ("apprise: {urlEnv: 'no such'}", "spec.apprise.urlEnv"),
    ],
)
def test_bad_sinks_are_refused_at_apply(cv: Conveyor, spec: str, message: str) -> None:
    doc = f"""
---
apiVersion: conveyor.dev/v1
kind: NotificationSink
metadata: {{name: bad}}
spec:
  {spec}
"""
    with pytest.raises(DefinitionError, match=message.replace("[", r"\[").replace("]", r"\]")):
        apply_yaml(cv, doc)
    assert cv.get("NotificationSink") == []
