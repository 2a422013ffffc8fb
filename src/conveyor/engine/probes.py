"""Health probes: the engine GETs each probe's URL every `interval` and stores the answer as a
health report of node `node` of entity `entity` in the probe's environment.

The calls run on a few short-lived threads so a slow endpoint never holds up a pass; the
answers wait in memory until a pass (or `Engine.probe_due`) stores them with `health.record`.
Only `serve` and `probe_due` start probes: `run_until_idle` must end, and a probe is always
due again.

Mapping an answer (decided here, beyond the definition's comments):

* No answer (connection refused, reset, timed out): live false, no state.
* A JSON answer holding `field`: its value (text; a number or boolean as JSON writes it) is
  looked up in `fieldStates` (exactly, then ignoring case), else read as a state name; a
  value that is neither is WARNING: neither healthy nor unhealthy.
* Otherwise `statusStates[code]`, else 2xx HEALTHY and anything else ERROR (redirects are
  not followed: a 3xx is ERROR unless mapped).
* The version is `versionField`'s value when the JSON answer has a text or number there,
  else the version of the release that most recently succeeded in the environment (any
  product). With neither, the report is skipped: nothing known runs there yet.

URLs may carry credentials (user info, query): messages and logs never show them.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.orm import Session

from conveyor.clock import Clock
from conveyor.engine import health, resources
from conveyor.engine.rollback import current_release
from conveyor.errors import ConveyorError
from conveyor.health.timeline import HealthState
from conveyor.model.definitions import EnvironmentSpec, ProbeDef
from conveyor.model.jsonpath import MISSING, find
from conveyor.store.db import Store

log = logging.getLogger(__name__)

MAX_WORKERS = 4
# A health answer is small; more than this is not read, and not parsed as JSON.
MAX_BODY = 1 << 20

Key = tuple[str, str, str, str]  # environment, entity, node, url


@dataclass(frozen=True)
class Probe:
    """One probe of one environment, as defined now."""

    environment: str
    spec: ProbeDef

    @property
    def key(self) -> Key:
        return (self.environment, self.spec.entity, self.spec.node, self.spec.url)


@dataclass(frozen=True)
class ProbeStatus:
    """What a probe did last, for people: `url` never holds credentials."""

    environment: str
    entity: str
    node: str
    url: str
    last_run: datetime | None
    next_due: datetime | None
    running: bool
    message: str


@dataclass(frozen=True)
class _Answer:
    probe: Probe
    time: datetime
    live: bool
    state: HealthState | None
    version: str | None  # from versionField; None: the deployed version
    message: str
    report: bool = True  # False: no answer worth a report (an invalid URL)


class Prober:
    """Knows when each (environment, probe) last ran, runs the due ones on worker threads and
    stores their answers. Its memory is only scheduling: after a restart every probe is due."""

    def __init__(self, clock: Clock, wake: threading.Event, max_workers: int = MAX_WORKERS) -> None:
        self.clock = clock
        self.wake = wake
        self._max = max_workers
        self._cond = threading.Condition()
        self._pending: deque[Probe] = deque()
        self._inflight: set[Key] = set()
        self._threads = 0
        self._done: list[_Answer] = []
        self._last: dict[Key, datetime] = {}
        self._probes: dict[Key, Probe] = {}
        self._status: dict[Key, str] = {}
        self._logged: set[tuple[Key, str]] = set()

    # --- scheduling ----------------------------------------------------------------------

    def due(self, environments: dict[str, EnvironmentSpec], now: datetime) -> list[Probe]:
        """The probes to run at `now`, longest overdue first; forgets probes no longer defined."""
        current: dict[Key, Probe] = {}
        for name, spec in sorted(environments.items()):
            for definition in spec.health.probes:
                probe = Probe(name, definition)
                current.setdefault(probe.key, probe)
        with self._cond:
            self._probes = current
            for table in (self._last, self._status):
                for key in [k for k in table if k not in current and k not in self._inflight]:
                    del table[key]
            self._logged = {e for e in self._logged if e[0] in current}
            busy = self._inflight | {p.key for p in self._pending}
            ready = [
                p
                for key, p in current.items()
                if key not in busy
                and (key not in self._last or self._next(p) <= now)
                and self._admitted(p, environments[p.environment])
            ]
            return sorted(ready, key=lambda p: self._last.get(p.key) or now)

    def _next(self, probe: Probe) -> datetime:
        return self._last[probe.key] + probe.spec.interval

    def _admitted(self, probe: Probe, env: EnvironmentSpec) -> bool:
        if env.allows_registration() or probe.spec.entity in env.declared():
            return True
        self._note(probe.key, f"entity '{probe.spec.entity}' is not registered: probe skipped")
        return False

    def start_due(
        self, store: Store, now: datetime, mine: Callable[[str], bool] | None = None
    ) -> datetime | None:
        """Start the probes due at `now` (definitions read afresh); when the next is due. None:
        no probe waits on time (running ones set the wake event when they end). Engines
        sharing a store each probe the environments of their share (`mine`)."""
        with store.read() as session:
            environments = {
                c.name: c.spec
                for c in resources.list_current(session, "Environment")
                if mine is None or mine(c.name)
            }
        with self._cond:
            for probe in self.due(environments, now):
                self._last[probe.key] = now
                self._pending.append(probe)
                if self._threads < self._max:
                    self._threads += 1
                    threading.Thread(target=self._work, name="probe", daemon=True).start()
            waiting = [
                self._next(p)
                for key, p in self._probes.items()
                if key in self._last and key not in self._inflight and p not in self._pending
            ]
        return min(waiting, default=None)

    def _work(self) -> None:
        # Each turn takes one queued probe; the thread ends when none is left.
        while (probe := self._take()) is not None:
            answer = self._ask(probe)
            with self._cond:
                self._done.append(answer)
                self._inflight.discard(probe.key)
                self._cond.notify_all()
            self.wake.set()

    def _take(self) -> Probe | None:
        with self._cond:
            if not self._pending:
                self._threads -= 1
                return None
            probe = self._pending.popleft()
            self._inflight.add(probe.key)
            return probe

    def wait(self, timeout: float) -> bool:
        """Wait until no probe is queued or running; False when `timeout` seconds ran out."""
        with self._cond:
            return self._cond.wait_for(
                lambda: not self._pending and not self._inflight, timeout=timeout
            )

    # --- one call ------------------------------------------------------------------------

    def _ask(self, probe: Probe) -> _Answer:
        """GET the URL; never raises, so a worker thread always hands back an answer."""
        spec = probe.spec
        shown, secrets = redact(spec.url)
        line = f"GET {shown}"
        try:
            body, code, truncated = _get(spec.url, spec.timeout)
        except httpx.TransportError as exc:  # no answer: refused, reset, timed out
            text = scrub(f"{type(exc).__name__}: {exc}", secrets)
            return _Answer(probe, self.clock.now(), False, None, None, f"{line}: {text}: not live")
        except Exception as exc:  # an invalid URL, or a bug: no report either way
            text = scrub(f"{type(exc).__name__}: {exc}", secrets)
            return _Answer(probe, self.clock.now(), False, None, None, f"{line}: {text}", False)
        arrived = self.clock.now()
        try:
            document = MISSING if truncated else json.loads(body)
        except (ValueError, RecursionError):  # not JSON (or absurdly nested): no fields
            document = MISSING
        state, why = judge(spec, code, document)
        version = _text(find(document, spec.versionField)) if spec.versionField else None
        return _Answer(probe, arrived, True, state, version, f"{line} -> {code}: {state} ({why})")

    # --- storing -------------------------------------------------------------------------

    def record(self, session: Session, now: datetime) -> int:
        """Store the answers that arrived since the last call, in `session`; how many stored."""
        with self._cond:
            answers, self._done = self._done, []
        stored = 0
        versions: dict[str, str | None] = {}
        specs: dict[str, EnvironmentSpec] = {}  # read once: it costs more than a report
        for answer in answers:
            key, env = answer.probe.key, answer.probe.environment
            if not answer.report:
                self._note(key, f"{answer.message}; no report")
                continue
            version = answer.version
            if version is None:
                if env not in versions:
                    running = current_release(session, env)
                    versions[env] = running.version if running else None
                version = versions[env]
            if version is None:
                why = f"no release has succeeded in {env} yet and the answer names no version"
                self._note(key, f"{answer.message}; report skipped: {why}", quiet=True)
                continue
            spec = answer.probe.spec
            try:
                if env not in specs:
                    specs[env] = health.current_environment(session, env)
                stored += health.record(
                    session,
                    env,
                    spec.entity,
                    spec.node,
                    answer.time,
                    answer.live,
                    answer.state,
                    version,
                    now,
                    environment_spec=specs[env],
                )
            except ConveyorError as exc:  # refused (registration rule, a bad version): skip
                self._note(key, f"{answer.message}; report refused: {exc}")
                continue
            self._note(key, f"{answer.message}; reported as version {version}", quiet=True)
        return stored

    def _note(self, key: Key, message: str, quiet: bool = False) -> None:
        """Set a probe's status; a problem is logged once per probe, not at every interval."""
        with self._cond:
            self._status[key] = message
            first = not quiet and (key, message) not in self._logged
            if first:
                self._logged.add((key, message))
        if first:
            log.warning("probe %s/%s: %s", key[0], key[1], message)

    def statuses(self) -> list[ProbeStatus]:
        """Every probe defined when last scheduled, with what it did last."""
        with self._cond:
            return [
                ProbeStatus(
                    *key[:3],
                    redact(p.spec.url)[0],
                    self._last.get(key),
                    self._next(p) if key in self._last else None,
                    key in self._inflight or p in self._pending,
                    self._status.get(key, "not run yet"),
                )
                for key, p in sorted(self._probes.items())
            ]

    def probe_due(self, store: Store, wait: float) -> list[ProbeStatus]:
        """Run the probes due now, wait up to `wait` seconds for them, and store the answers
        (those still running are stored by a later pass)."""
        self.start_due(store, self.clock.now())
        self.wait(wait)
        with store.session() as session:
            self.record(session, self.clock.now())
        return self.statuses()


# --- the answer --------------------------------------------------------------------------


def _get(url: str, timeout: timedelta) -> tuple[bytes, int, bool]:
    """The status code and at most MAX_BODY bytes of the answer; True when there was more."""
    body = bytearray()
    parsed = httpx.URL(url)
    # User info goes as an Authorization header: httpx logs request URLs (at INFO).
    auth = httpx.BasicAuth(parsed.username, parsed.password) if parsed.userinfo else None
    with (
        httpx.Client(timeout=timeout.total_seconds(), follow_redirects=False) as client,
        client.stream("GET", parsed.copy_with(userinfo=b""), auth=auth) as response,
    ):
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > MAX_BODY:
                return b"", response.status_code, True
        return bytes(body), response.status_code, False


def judge(spec: ProbeDef, code: int, document: Any) -> tuple[HealthState, str]:
    """The state an answer means, and where it came from."""
    if spec.field is not None:
        value = find(document, spec.field)
        if value is not MISSING and not isinstance(value, dict | list):
            text = value if isinstance(value, str) else json.dumps(value)
            mapped = spec.fieldStates.get(text)
            if mapped is None:
                folded = {k.casefold(): v for k, v in spec.fieldStates.items()}
                mapped = folded.get(text.casefold())
            seen = f"{spec.field} is {json.dumps(text[:60])}"
            if mapped is not None:
                return HealthState(mapped), seen
            try:
                return HealthState(text.strip().upper()), seen
            except ValueError:
                # Neither healthy nor unhealthy: a mapping gap must not recall a release.
                return HealthState.WARNING, f"{seen}, not a known state"
    if code in spec.statusStates:
        return HealthState(spec.statusStates[code]), "statusStates"
    return (HealthState.HEALTHY if 200 <= code < 300 else HealthState.ERROR), "status code"


def _text(value: Any) -> str | None:
    """A version from a JSON value: text or a number; anything else is no version."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    text = str(value).strip()
    return text or None


# --- credentials -------------------------------------------------------------------------


def redact(url: str) -> tuple[str, list[str]]:
    """The URL to show (no user info, query values hidden) and the texts to scrub elsewhere."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:  # its message may quote the URL, credentials and all
        return "(invalid url)", [url]
    secrets = [url, str(parsed)]
    for part in (parsed.userinfo.decode(errors="replace"), parsed.username, parsed.password):
        if part:
            secrets.append(part)
    query = parsed.query.decode(errors="replace")
    if query:
        secrets.append(query)
        # A short value (a flag like 1) is left in error texts rather than mangle them;
        # the URL itself, where it appears in full, is replaced whole.
        secrets.extend(v for _, v in parsed.params.multi_items() if len(v) >= 4)
    shown = str(parsed.copy_with(userinfo=b"", query=None, fragment=None))
    return (shown + "?***" if query else shown), secrets


def scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
