"""Definitions are read once per session, and a write in that session is seen at once."""

from __future__ import annotations

from conveyor.clock import ManualClock
from conveyor.engine import resources
from conveyor.engine.service import Conveyor
from conveyor.spec import load_text
from tests.conftest import BASE, apply_yaml

CHANGED = """
apiVersion: conveyor.dev/v1
kind: Environment
metadata: {name: qa, labels: {tier: qa, canary: "yes"}}
spec: {type: non-production}
"""


def test_apply_and_delete_in_a_session_are_seen_in_it(cv: Conveyor, clock: ManualClock) -> None:
    apply_yaml(cv, BASE)
    with cv.store.session() as s:
        before = resources.get_current(s, "Environment", "qa")
        assert resources.get_current(s, "Environment", "qa") is before  # read once
        resources.apply(s, load_text(CHANGED, "qa.yaml"), cv.registry, "tester", clock.now())
        after = resources.get_current(s, "Environment", "qa")
        assert after.revision == before.revision + 1
        assert after.labels == {"tier": "qa", "canary": "yes"}
        resources.delete(s, "Environment", "qa", "tester", clock.now())
        assert "qa" not in resources.environments(s)
