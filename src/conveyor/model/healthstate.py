"""The states a node reports (seed 005). Apart from the health arithmetic, which needs
numpy, so that the CLI can list them in its help without loading it."""

from __future__ import annotations

from enum import StrEnum


class HealthState(StrEnum):
    HEALTHY = "HEALTHY"
    DEFERRING = "DEFERRING"
    WARNING = "WARNING"
    REPAIRING = "REPAIRING"
    SUSPENDED = "SUSPENDED"
    TERMINAL = "TERMINAL"
    ERROR = "ERROR"
