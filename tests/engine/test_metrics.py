"""`conveyor metrics`: the store's figures in the Prometheus text format (issue 11)."""

from __future__ import annotations

from datetime import timedelta

from prometheus_client.parser import text_string_to_metric_families

from conveyor.clock import ManualClock
from conveyor.engine.service import Conveyor
from tests.conftest import BASE, DIGEST, apply_yaml
from tests.engine.test_audit_replay import FLOW

GATED = FLOW.replace(
    "spec:\n  workflow:", "spec:\n  gates: [{releaseLabel: {key: go}}]\n  workflow:"
)
FAILING = """
---
apiVersion: conveyor.dev/v1
kind: PromotionPolicy
metadata: {name: qa}
spec:
  selector: {environments: {names: [qa]}}
  workflow:
    steps:
      - name: deploy
        tasks: [{name: broken, uses: run, with: {args: ["false"]}}]
"""
APPROVED = """
---
apiVersion: conveyor.dev/v1
kind: PromotionPolicy
metadata: {name: qa}
spec:
  selector: {environments: {names: [qa]}}
  gates: [{approval: {require: [{users: [erin]}]}}]
"""
WEB = {"web": f"registry.local/web@{DIGEST}"}


def samples(text: str) -> dict[str, float]:
    """Each sample by its name and labels, as `name{a="x",b="y"}` (labels sorted)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            found[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return found


def test_the_figures_follow_the_store(cv: Conveyor, clock: ManualClock) -> None:
    apply_yaml(cv, BASE + GATED)
    cv.create_release("shop", "1.0.0", WEB)
    cv.trigger("main", "shop@1.0.0")
    cv.run_until_idle()
    clock.advance(timedelta(hours=1))
    waiting = samples(cv.metrics())
    assert waiting['conveyor_releases{status="running"}'] == 1
    assert waiting['conveyor_promotions{environment="dev",state="waiting"}'] == 1
    assert waiting['conveyor_promotions{environment="qa",state="pending"}'] == 1
    assert waiting['conveyor_promotions{environment="qa",state="succeeded"}'] == 0
    assert waiting["conveyor_oldest_waiting_promotion_seconds"] == 3600
    assert waiting['conveyor_gates_waiting{kind="releaseLabel"}'] == 1
    assert waiting["conveyor_approvals_pending"] == 0
    cv.label("shop@1.0.0", {"go": "yes"}, [])
    cv.run_until_idle()
    done = samples(cv.metrics())
    assert done['conveyor_releases{status="succeeded"}'] == 1
    assert done['conveyor_promotions{environment="qa",state="succeeded"}'] == 1
    assert done['conveyor_promotions{environment="qa",state="pending"}'] == 0  # not gone
    assert done['conveyor_task_runs{status="succeeded"}'] == 2
    assert done["conveyor_oldest_waiting_promotion_seconds"] == 0
    assert done["conveyor_audit_events_total"] > waiting["conveyor_audit_events_total"]
    assert 'conveyor_gates_waiting{kind="releaseLabel"}' not in done
    # From running to done (the hour dev waited for its label is not in it): no time on the
    # controllable clock, so each falls in the first bucket.
    for env in ("dev", "qa"):
        assert (
            done[f'conveyor_promotion_duration_seconds_bucket{{environment="{env}",le="1.0"}}'] == 1
        )
        assert done[f'conveyor_promotion_duration_seconds_count{{environment="{env}"}}'] == 1
    assert done['conveyor_promotion_duration_seconds_sum{environment="dev"}'] == 0


def test_failures_recalls_approvals_and_the_queue_are_counted(
    cv: Conveyor, clock: ManualClock
) -> None:
    apply_yaml(cv, BASE + FLOW + FAILING)
    cv.create_release("shop", "1.0.0", WEB)
    cv.trigger("main", "shop@1.0.0")
    cv.run_until_idle()
    cv.recall("shop@1.0.0", "bad build")
    apply_yaml(cv, APPROVED)
    cv.create_release("shop", "1.1.0", WEB)
    cv.trigger("main", "shop@1.1.0")
    queued = samples(cv.metrics())
    cv.run_until_idle()
    figures = samples(cv.metrics())

    assert queued["conveyor_queue_depth"] >= 1  # triggered, not looked at yet
    assert figures["conveyor_queue_depth"] == 0
    assert figures["conveyor_task_failures_total"] == 1
    assert figures["conveyor_recalls_total"] == 1
    assert figures["conveyor_approvals_pending"] == 1
    assert figures['conveyor_gates_waiting{kind="approval"}'] == 1
    assert figures["conveyor_notifications_undelivered"] == 0
    assert "conveyor_engine_pass_seconds_count" not in figures  # the store's figures only
    with_process = samples(cv.metrics(with_process=True))
    assert with_process["conveyor_engine_pass_seconds_count"] >= 1


def test_metrics_are_served_over_http_for_prometheus(cv: Conveyor) -> None:
    import httpx

    from conveyor.engine.metricsport import CONTENT_TYPE, serve_metrics

    apply_yaml(cv, BASE)
    server = serve_metrics(lambda: cv.metrics(True), "127.0.0.1", 0)
    try:
        host, port = server.server_address[:2]
        with httpx.Client(trust_env=False) as client:
            answer = client.get(f"http://{host}:{port}/metrics")
            missing = client.get(f"http://{host}:{port}/other")
        assert answer.status_code == 200 and answer.headers["content-type"] == CONTENT_TYPE
        assert "# TYPE conveyor_audit_events_total counter" in answer.text
        assert "conveyor_engine_pass_seconds_count" in answer.text
        events = next(
            line
            for line in answer.text.splitlines()
            if line.startswith("conveyor_audit_events_total")
        )
        assert float(events.split()[-1]) == len(cv.audit_log(limit=10_000))
        assert missing.status_code == 404
    finally:
        server.shutdown()
        server.server_close()
