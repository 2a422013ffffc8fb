"""How long to wait before trying again what failed: capped, exponential, jittered."""

from __future__ import annotations

import random
from datetime import timedelta


def backoff(failures: int, first: float = 1.0, cap: float = 300.0) -> timedelta:
    """The wait after the `failures`-th failure in a row: doubling from `first` seconds up
    to `cap`, each drawn from half to all of its step (jitter), so a plugin failing for
    many releases at once does not bring them all back in the same pass."""
    step = min(cap, first * 2 ** min(max(failures, 1) - 1, 30))
    return timedelta(seconds=step * random.uniform(0.5, 1.0))
