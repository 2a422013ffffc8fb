"""Wake-ups between processes on one machine: a datagram on a UNIX socket beside the database.

`conveyor trigger` in one shell wakes `conveyor engine` in another within milliseconds,
without the engine polling. On PostgreSQL, LISTEN/NOTIFY carries the same signal across
machines (pgwake.py): `listen` picks the one the database has.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import URL

if TYPE_CHECKING:
    from conveyor.engine.pgwake import PgListener

from conveyor.errors import ConveyorError

MAX_PATH = 100  # sun_path is 108 bytes on Linux; leave room


def path_for(url: URL) -> Path | None:
    """The socket path for a SQLite file database, or None where there is none."""
    if not url.drivername.startswith("sqlite") or not url.database or url.database == ":memory:":
        return None
    path = Path(url.database).resolve().with_suffix(".wake")
    return path if len(str(path)) < MAX_PATH else None


def notify(path: Path | None) -> None:
    """Tell a listening engine that something changed; a missing listener is fine."""
    if path is None or not path.exists():
        return
    with (
        contextlib.suppress(OSError),
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock,
    ):
        sock.setblocking(False)
        sock.sendto(b"w", str(path))


class Listener:
    """Sets `event` for every datagram received, until closed."""

    def __init__(self, path: Path, event: threading.Event) -> None:
        self.path = path
        self._event = event
        self._closed = threading.Event()
        if path.exists():
            if _listened(path):
                raise ConveyorError(
                    f"{path} is the wake socket of an engine that is running: stop it first"
                )
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)  # left by an engine that died
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._inode = path.stat().st_ino
        self._thread = threading.Thread(target=self._loop, name="wakeup", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._closed.is_set():
            try:
                self._sock.recv(64)
            except OSError:
                return  # closed
            self._event.set()

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            if self.path.stat().st_ino == self._inode:  # ours, not a successor's
                os.unlink(self.path)
        self._thread.join(timeout=2)


def notify_sql(url: URL) -> str | None:
    """The statement a unit of work runs to wake engines on PostgreSQL (None elsewhere)."""
    if url.drivername.startswith("postgresql"):
        from conveyor.engine.pgwake import notify_sql as pg

        return pg()
    return None


def listen(url: URL, event: threading.Event) -> Listener | PgListener | None:
    """Set `event` whenever another process changes the database at `url` (None: nothing
    can tell, as for an in-memory database; the engine's resync still looks)."""
    if url.drivername.startswith("postgresql"):
        from conveyor.engine.pgwake import PgListener

        return PgListener(url, event)
    path = path_for(url)
    return Listener(path, event) if path else None


def _listened(path: Path) -> bool:
    """Whether a live process listens on the socket file (a stale one refuses)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        except OSError:
            return True  # not ours to judge: leave it
        return True
