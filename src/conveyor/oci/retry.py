"""Bounded retries with exponential backoff, and the cancel/abort checks they honour.

Each operation (one manifest GET, one whole blob transfer) gets at most `TRIES`
attempts; operations never nest retry loops, so the worst case stays TRIES attempts and
roughly 0.5 + 1 + 2 + 4 s of sleep (longer only when a 429 asks, capped at MAX_DELAY).
A client may sleep; it must still stop promptly when the caller cancels, so sleeping
polls the cancel event.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import httpx

from conveyor.oci.errors import CopyCancelled, TransferFailed

log = logging.getLogger(__name__)

T = TypeVar("T")

TRIES = 5
FIRST_DELAY = 0.5
MAX_DELAY = 30.0
# 408 and 429 are the client errors that mean "later"; 501/505 are permanent
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class Retryable(Exception):
    """One attempt failed in a way another may fix (not a ConveyorError: it never leaves
    the retry loop; exhaustion turns it into TransferFailed)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Halt:
    """The caller's cancel event, the copy's deadline, and an internal abort (set when a
    sibling transfer failed, so the other workers stop instead of finishing blobs nobody
    will tag). Checked between requests and between the chunks of a blob."""

    def __init__(self, cancel: threading.Event | None = None, timeout: float | None = None) -> None:
        self._cancel = cancel
        self._abort = threading.Event()
        self._timeout = timeout
        self._deadline = None if timeout is None else time.monotonic() + timeout

    def abort(self) -> None:
        self._abort.set()

    def check(self) -> None:
        if self._cancel is not None and self._cancel.is_set():
            raise CopyCancelled("copy cancelled; nothing was tagged")
        if self._abort.is_set():
            raise CopyCancelled("copy stopped because another transfer failed")
        if self._deadline is not None and time.monotonic() > self._deadline:
            raise TransferFailed(f"copy did not finish within {self._timeout:g}s")

    def sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.check()
            self._abort.wait(min(left, 0.05))
        self.check()


def retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds, when given as seconds (the HTTP-date form is ignored: the
    exponential backoff is then used)."""
    value = response.headers.get("Retry-After", "").strip()
    return float(value) if value.isdigit() else None


def backoff(attempt: int, hint: float | None) -> float:
    if hint is not None:
        return min(hint, MAX_DELAY)
    # jitter spreads concurrent workers that failed together
    delay: float = FIRST_DELAY * 2**attempt * random.uniform(0.8, 1.2)
    return min(delay, MAX_DELAY)


def with_retries(attempt: Callable[[], T], halt: Halt, what: str) -> T:
    """`attempt()` until it returns, at most TRIES times; Retryable means try again."""
    for n in range(TRIES):
        halt.check()
        try:
            return attempt()
        except Retryable as e:
            if n == TRIES - 1:
                raise TransferFailed(f"{what}: {e} (gave up after {TRIES} tries)") from None
            delay = backoff(n, e.retry_after)
            log.info("%s: %s; retrying in %.1fs", what, e, delay)
            halt.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
