"""A pass reads only the health reports that arrived since it last looked, and judges
exactly as a full read of the history would."""

from __future__ import annotations

from datetime import timedelta

from conveyor.clock import ManualClock
from conveyor.engine import health
from conveyor.engine.service import Conveyor
from tests.conftest import apply_yaml
from tests.engine.test_canary import DEFS, start


def test_each_look_reads_only_new_reports(cv: Conveyor, clock: ManualClock) -> None:
    apply_yaml(cv, DEFS.replace("soak: 2h}", "soak: 12h}"))
    start(cv, "1.0.0")
    begin = clock.now()
    # A history of 300 reports, a minute apart, some of them unhealthy; then judged.
    clock.set(begin + timedelta(minutes=300))  # reports are not dated in the future
    for n in range(300):
        state = "WARNING" if n % 7 == 0 else "HEALTHY"
        at = begin + timedelta(minutes=n)
        cv.report_health("qa", "qa-east", "pod-1", True, state, "1.0.0", at=at)
    cache = cv.engine.parsed.reports
    while cv.engine.run_pass().moved:  # (run_until_idle would jump the clock to the soak)
        pass
    first = cache.rows_read
    assert first == 300

    # One report more: the next look reads that one, not the history again.
    cv.report_health("qa", "qa-west", "pod-1", True, "HEALTHY", "1.0.0")
    cv.engine.run_pass()
    assert cache.rows_read == first + 1
    # ... and judges as a full read does.
    with cv.store.session() as session:
        cached = health.show(session, "qa", "shop", "1.0.0", clock.now(), None, cache)
    assert cache.rows_read == first + 1
    full = cv.health("qa", "shop", "1.0.0")
    assert cached == full
    assert set(full) == {"qa-east", "qa-west"}
    assert full["qa-east"].soak == timedelta(minutes=300)
