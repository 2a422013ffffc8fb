"""`conveyor metrics`: the store's figures in the Prometheus text format (issue 11)."""

from __future__ import annotations

import re
from datetime import timedelta

from conveyor.clock import ManualClock
from conveyor.engine.service import Conveyor
from tests.conftest import BASE, DIGEST, apply_yaml
from tests.engine.test_audit_replay import FLOW

SAMPLE = re.compile(r'^[a-z_]+(\{[a-z]+="[a-z]+"\})? \d+(\.\d+)?$')

GATED = FLOW.replace(
    "spec:\n  workflow:", "spec:\n  gates: [{releaseLabel: {key: go}}]\n  workflow:"
)


def samples(text: str) -> dict[str, float]:
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert all(SAMPLE.match(line) for line in lines), lines
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in lines}


def test_the_figures_follow_the_store(cv: Conveyor, clock: ManualClock) -> None:
    apply_yaml(cv, BASE + GATED)
    cv.create_release("shop", "1.0.0", {"web": f"registry.local/web@{DIGEST}"})
    cv.trigger("main", "shop@1.0.0")
    cv.run_until_idle()
    clock.advance(timedelta(hours=1))
    waiting = samples(cv.metrics())
    assert waiting['conveyor_releases{status="running"}'] == 1
    assert waiting['conveyor_promotions{state="waiting"}'] == 1
    assert waiting['conveyor_promotions{state="pending"}'] == 1
    assert waiting["conveyor_oldest_waiting_promotion_seconds"] == 3600
    cv.label("shop@1.0.0", {"go": "yes"}, [])
    cv.run_until_idle()
    done = samples(cv.metrics())
    assert done['conveyor_releases{status="succeeded"}'] == 1
    assert done['conveyor_promotions{state="succeeded"}'] == 2
    assert done['conveyor_task_runs{status="succeeded"}'] == 2
    assert done["conveyor_oldest_waiting_promotion_seconds"] == 0
    assert done["conveyor_audit_events_total"] > waiting["conveyor_audit_events_total"]
