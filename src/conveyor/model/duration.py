"""Durations as users write them: `30s`, `15m`, `2h`, `3d`, or combined `1h30m`."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"(\d+)(w|d|h|m|s)")
_WHOLE = re.compile(r"^(?:\d+(?:w|d|h|m|s))+$")


def parse_duration(text: str | int) -> timedelta:
    """Parse `2h`, `1h30m`, `0s`; a bare integer is seconds. Raises ValueError with a hint."""
    if isinstance(text, bool):
        raise ValueError("a duration is text such as '30s', '15m', '2h' or '3d'")
    if isinstance(text, int):
        if text < 0:
            raise ValueError("a duration cannot be negative")
        return _seconds(text)
    s = str(text).strip().lower().replace(" ", "")
    if not _WHOLE.match(s):
        raise ValueError(
            f"'{text}' is not a duration: write a number and a unit, such as 30s, 15m, 2h or 3d"
        )
    return _seconds(sum(int(n) * _UNITS[u] for n, u in _PART.findall(s)))


def _seconds(total: int) -> timedelta:
    try:
        return timedelta(seconds=total)
    except OverflowError:
        raise ValueError(
            f"{total}s is far too long a duration: write at most days, e.g. 31d"
        ) from None


def format_duration(delta: timedelta) -> str:
    """The shortest readable form: `2h`, `1h12m`, `45s`, `3d4h`."""
    total = round(delta.total_seconds())
    if total <= 0:
        return "0s"
    out = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if total >= size:
            out.append(f"{total // size}{unit}")
            total %= size
    # Two units are enough for a human reading "1h12m left".
    return "".join(out[:2])


def check_limit(delta: timedelta, maximum: timedelta, what: str) -> timedelta:
    if delta > maximum:
        raise ValueError(
            f"{what} {format_duration(delta)} is over its limit of {format_duration(maximum)}"
        )
    return delta
