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


def test_metrics_are_served_over_http_for_prometheus(cv: Conveyor) -> None:
    import httpx

    from conveyor.engine.metricsport import CONTENT_TYPE, serve_metrics

    apply_yaml(cv, BASE)
    server = serve_metrics(cv.metrics, "127.0.0.1", 0)
    try:
        host, port = server.server_address[:2]
        with httpx.Client(trust_env=False) as client:
            answer = client.get(f"http://{host}:{port}/metrics")
            missing = client.get(f"http://{host}:{port}/other")
        assert answer.status_code == 200 and answer.headers["content-type"] == CONTENT_TYPE
        assert "# TYPE conveyor_audit_events_total" in answer.text
        events = next(
            line for line in answer.text.splitlines() if line.startswith("conveyor_audit_events")
        )
        assert float(events.split()[-1]) == len(cv.audit_log(limit=10_000))
        assert missing.status_code == 404
    finally:
        server.shutdown()
        server.server_close()
