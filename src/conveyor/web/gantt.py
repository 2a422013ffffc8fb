"""A release's promotions as bars on one time axis (the release page's timeline)."""

from __future__ import annotations

from dataclasses import dataclass

from conveyor.engine.view import ReleaseView


@dataclass(frozen=True)
class Bar:
    environment: str
    state: str
    left: float  # percent of the axis before the bar starts
    width: float  # percent of the axis it spans
    text: str


def gantt(view: ReleaseView) -> list[Bar]:
    """From the first start to the last thing that happened: no clock is read, so a
    running promotion's bar ends where the release was last seen to change."""
    nodes = [n for n in view.nodes if n.started_at is not None]
    if not nodes:
        return []
    start = min(n.started_at for n in nodes if n.started_at is not None)
    end = max(max(n.finished_at or n.since, n.since) for n in nodes)
    span = max((end - start).total_seconds(), 1.0)
    bars = []
    for n in nodes:
        assert n.started_at is not None
        stop = n.finished_at or n.since
        left = (n.started_at - start).total_seconds() / span * 100
        width = max((stop - n.started_at).total_seconds() / span * 100, 0.8)
        text = f"{n.environment}: {n.state}, {n.started_at:%H:%M:%S} to {stop:%H:%M:%S} UTC"
        width = min(width, 100 - left)
        bars.append(Bar(n.environment, n.state, round(left, 2), round(width, 2), text))
    return bars
