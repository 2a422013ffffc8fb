"""Sending the notification outbox: webhooks (JSON, signed) and apprise targets.

At least once: a row is marked delivered only after its sink answered, so a crash between
the two sends it again, with the same delivery id. Several engines may deliver from one
store: a batch is claimed (its rows' next attempt moved `CLAIM` ahead, rows another engine
is claiming skipped) before it is sent, so two never send the same row at once. Failures
are retried with a growing backoff (1 s doubling to 1 h, 12 attempts, about 4 hours) and
then kept, undelivered, with their last error, for `conveyor notifications` to show.

A webhook is POSTed `application/json` with these headers:
- `X-Conveyor-Event`: the event, e.g. `promotion.failed`;
- `X-Conveyor-Delivery`: the delivery id (also `deliveryId` in the body);
- `X-Conveyor-Signature`: `sha256=` + HMAC-SHA256 of the body with the sink's secret
  (`secretEnv`), when it has one; compare it in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from conveyor.actions.base import declared_secret_names
from conveyor.clock import Clock, utc
from conveyor.engine.backoff import backoff
from conveyor.engine.notify import outbox_written, sinks
from conveyor.model.definitions import NotificationSpec
from conveyor.store.db import Store
from conveyor.store.tables import OutboxRow

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 12
BATCH = 100
RESYNC = timedelta(seconds=5)
CLAIM = timedelta(minutes=2)  # a claimed batch is sent, or due again (its sender died)


@dataclass(frozen=True)
class _Job:
    id: int
    sink: str
    event: str
    payload: dict[str, Any]
    attempts: int


def deliver_due(store: Store, clock: Clock, env: Mapping[str, str] | None = None) -> int:
    """Send what is due now (one batch); how many were delivered. Nothing is held open in
    the database while a sink is called."""
    env = os.environ if env is None else env
    now = clock.now()
    ready = (
        OutboxRow.delivered_at.is_(None),
        OutboxRow.attempts < MAX_ATTEMPTS,
        OutboxRow.next_attempt_at <= now,
    )
    with store.read() as s:  # most looks find nothing: they take no write lock
        if s.scalar(select(OutboxRow.id).where(*ready).limit(1)) is None:
            return 0
    with store.session() as s:
        due = list(
            s.scalars(
                select(OutboxRow)
                .where(*ready)
                .order_by(OutboxRow.id)
                .limit(BATCH)
                .with_for_update(skip_locked=True)
            )
        )
        for row in due:
            row.next_attempt_at = now + CLAIM
        jobs = [_Job(r.id, r.sink, r.event, r.payload, r.attempts) for r in due]
        specs = sinks(s) if jobs else {}
    outcomes = {job.id: _send(specs.get(job.sink), job, env) for job in jobs}
    if not outcomes:
        return 0
    done = clock.now()
    with store.session() as s:
        for row in s.scalars(select(OutboxRow).where(OutboxRow.id.in_(outcomes))):
            error = outcomes[row.id]
            row.attempts += 1
            if error is None:
                row.delivered_at, row.last_error = done, ""
                continue
            row.last_error = error
            row.next_attempt_at = done + backoff(row.attempts, cap=3600)
            log.warning(
                "notification %s to %s failed (attempt %d of %d): %s",
                row.event,
                row.sink,
                row.attempts,
                MAX_ATTEMPTS,
                error,
            )
    return sum(1 for e in outcomes.values() if e is None)


def _send(spec: NotificationSpec | None, job: _Job, env: Mapping[str, str]) -> str | None:
    """None when delivered, else why not (never a secret, nor the sink's URL: webhook URLs
    often carry a token in their path)."""
    if spec is None:
        return f"the sink {job.sink} no longer exists"
    try:
        if spec.webhook is not None:
            return _webhook(spec, job, env)
        return _apprise(spec, job, env)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__} calling the webhook"


def _read(name: str, env: Mapping[str, str], field: str) -> tuple[str, str | None]:
    """The value of the variable `name`, or why it cannot be used."""
    if name not in declared_secret_names(env):
        return "", f"{field} {name} is not declared in CONVEYOR_SECRET_ENV where the engine runs"
    value = env.get(name, "")
    return value, None if value else f"{field} {name} is empty where the engine runs"


def _webhook(spec: NotificationSpec, job: _Job, env: Mapping[str, str]) -> str | None:
    assert spec.webhook is not None
    body = json.dumps(job.payload, sort_keys=True, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "conveyor",
        "X-Conveyor-Event": job.event,
        "X-Conveyor-Delivery": str(job.payload.get("deliveryId", job.id)),
    }
    if spec.webhook.secretEnv:
        secret, problem = _read(spec.webhook.secretEnv, env, "secretEnv")
        if problem:
            return problem
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers["X-Conveyor-Signature"] = f"sha256={digest}"
    timeout = spec.webhook.timeout.total_seconds()
    response = httpx.post(spec.webhook.url, content=body, headers=headers, timeout=timeout)
    if 200 <= response.status_code < 300:
        return None
    return f"the webhook answered HTTP {response.status_code}"


def _apprise(spec: NotificationSpec, job: _Job, env: Mapping[str, str]) -> str | None:
    import apprise

    assert spec.apprise is not None
    urls, problem = _read(spec.apprise.urlEnv, env, "urlEnv")
    if problem:
        return problem
    target = apprise.Apprise()
    if not target.add(urls.split()):
        return f"urlEnv {spec.apprise.urlEnv} holds no URL apprise knows"
    p = job.payload
    title = f"Conveyor: {job.event} {p.get('subject', '')}".strip()
    lines = [f"{k}: {v}" for k, v in (p.get("details") or {}).items()]
    body = "\n".join([f"{p.get('actor', '')} at {p.get('at', '')}", *lines])
    return None if target.notify(title=title, body=body) else "apprise could not deliver"


class Deliverer:
    """Sends the outbox in a thread beside an engine: at once when this process writes to
    the outbox, when the earliest retry is due, and every RESYNC for rows other processes
    wrote (a CLI's rollback)."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store, self.clock = store, clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="conveyor-delivery", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        outbox_written.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            outbox_written.clear()
            try:
                deliver_due(self.store, self.clock)
                until = _next_due(self.store)
                failures = 0
            except Exception:  # the database away for a moment: try again, later each time
                failures += 1
                log.exception("delivering notifications failed (%d in a row)", failures)
                until = self.clock.now() + backoff(failures, cap=60)
            if not self._stop.is_set():
                self.clock.sleep_until(until, outbox_written, cap=RESYNC)


def _next_due(store: Store) -> datetime | None:
    with store.read() as s:
        at = s.scalar(
            select(func.min(OutboxRow.next_attempt_at)).where(
                OutboxRow.delivered_at.is_(None), OutboxRow.attempts < MAX_ATTEMPTS
            )
        )
    return utc(at) if at else None
