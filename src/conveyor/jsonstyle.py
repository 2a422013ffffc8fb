"""One JSON style for every `-o json`: camelCase keys, RFC 3339 UTC times ending in `Z`,
durations in seconds. Scripts parse one shape whichever command they call."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def timestamp(value: datetime) -> str:
    """`2026-12-03T07:22:07Z`: UTC, no microseconds below a millisecond's interest."""
    utc = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    text = utc.isoformat(timespec="milliseconds" if utc.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def plain(value: Any) -> Any:
    """JSON-ready data. Field names of Conveyor's own records become camelCase; keys of
    plain dicts are kept as they are (they are user data: labels, artifact names,
    definition documents)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            camel(f.name): plain(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.repr
        }
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    if isinstance(value, datetime):
        return timestamp(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    return value


# What a release is in JSON (`release list -o json`, the API): the same fields in both.
RELEASE_FIELDS = (
    *("product", "version", "status", "flow", "created_by", "created_at"),
    *("triggered_at", "finished_at", "artifacts", "labels", "message"),
)


def release_doc(row: object) -> dict[str, Any]:
    return {camel(f): plain(getattr(row, f)) for f in RELEASE_FIELDS}


def verdict(health: Any) -> str:
    """An entity's health (EntityHealth) in a word: unhealthy, healthy or pending."""
    if health.unhealthy_verdict:
        return "unhealthy"
    if health.satisfies_healthy:
        return "healthy"
    return "pending"


def health_doc(health: Any, healthy: float, unhealthy: float) -> dict[str, Any]:
    """An entity's health (EntityHealth) against the product's thresholds."""
    return {
        "entity": health.entity,
        "firstSeen": health.first_seen,
        "soakSeconds": health.soak.total_seconds(),
        "healthySeconds": health.healthy.total_seconds(),
        "unhealthySeconds": health.unhealthy.total_seconds(),
        "healthyRatio": health.healthy_ratio,
        "unhealthyRatio": health.unhealthy_ratio,
        "healthyThreshold": healthy,
        "unhealthyThreshold": unhealthy,
        "satisfiesHealthy": health.satisfies_healthy,
        "unhealthyVerdict": health.unhealthy_verdict,
        "verdict": verdict(health),
    }


def windows_doc(environment: str, at: datetime, found: Any, decision: Any) -> dict[str, Any]:
    """Whether a promotion may start (a window Decision), and the windows that decide."""
    return {
        "environment": environment,
        "at": at,
        "open": decision.open,
        "reason": decision.reason,
        "until": decision.until,
        "nextOpening": decision.next_opening,
        "windows": [{"source": source, **w.model_dump(mode="json")} for source, w in found],
    }
