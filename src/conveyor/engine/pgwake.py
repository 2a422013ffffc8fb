"""Wake-ups across processes and machines on PostgreSQL: LISTEN/NOTIFY.

A unit of work that changes what an engine should act on sends `NOTIFY conveyor_wake` in
its transaction (PostgreSQL delivers it at commit, never for a rolled-back one); every
engine listening on the same database wakes within milliseconds, whichever machine or API
process wrote. The SQLite store does the same with a socket beside its file (wakeup.py).
"""

from __future__ import annotations

import contextlib
import logging
import threading

import psycopg
from sqlalchemy.engine import URL

CHANNEL = "conveyor_wake"
RECONNECT_AFTER = 1.0  # seconds, doubled up to a minute while the database is away
MAX_RECONNECT = 60.0

log = logging.getLogger(__name__)


def notify_sql() -> str:
    return f"NOTIFY {CHANNEL}"


def _conninfo(url: URL) -> str:
    """libpq's form of a SQLAlchemy URL (`postgresql+psycopg://...`)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class PgListener:
    """Sets `event` for every notification on the channel, until closed. A lost connection
    (the database restarted) is retried with backoff; the event is set on reconnecting, as
    notifications sent meanwhile were lost."""

    def __init__(self, url: URL, event: threading.Event) -> None:
        self._conninfo = _conninfo(url)
        self._event = event
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-wakeup", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        delay = RECONNECT_AFTER
        while not self._closed.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._event.set()  # whatever happened while not listening
                    delay = RECONNECT_AFTER
                    while not self._closed.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=100):
                            self._event.set()
            except psycopg.Error as exc:
                log.warning("listening for wake-ups: %s; again in %.0fs", exc, delay)
                self._closed.wait(delay)
                delay = min(delay * 2, MAX_RECONNECT)

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(RuntimeError):
            self._thread.join(timeout=5)
