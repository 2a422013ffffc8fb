"""How long this process's engine passes take, kept for `--metrics-port` to serve.

Plain counters rather than a prometheus_client Histogram: the engine is imported by every
command, and that library takes a tenth of a second to import (bench/cli.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class PassTimes:
    def __init__(self) -> None:
        self.counts = [0] * len(BUCKETS)  # passes at most as long as each bound
        self.total = 0
        self.seconds = 0.0
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        with self._lock:
            self.total += 1
            self.seconds += seconds
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    self.counts[i] += 1

    @contextmanager
    def timed(self) -> Iterator[None]:
        # Elapsed process time, not the Clock's: a controllable clock would say 0.
        started = time.perf_counter()
        try:
            yield
        finally:
            self.observe(time.perf_counter() - started)


passes = PassTimes()
