"""Illegal transitions are typed errors, refused through the engine, with nothing changed."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from conveyor.engine.service import Conveyor
from conveyor.engine.transitions import move_promotion
from conveyor.errors import Conflict, IllegalTransition
from conveyor.model.states import ALLOWED, RELEASE_ALLOWED, PromotionState, ReleaseStatus
from conveyor.store.tables import PromotionRow, ReleaseRow
from tests.conftest import BASE, apply_yaml, digest

FLOW = """
---
apiVersion: conveyor.dev/v1
kind: PromotionFlow
metadata: {name: main}
spec:
  version: "1.00"
  product: shop
  triggerEnvironment: dev
  environments: []
"""


def test_a_forbidden_promotion_transition_is_refused_and_changes_nothing(cv: Conveyor) -> None:
    apply_yaml(cv, BASE + FLOW)
    cv.create_release("shop", "1.0.0", {"web": f"registry.local/web@{digest(1)}"})
    cv.trigger("main", "shop@1.0.0")
    cv.run_until_idle()
    assert cv.show("shop@1.0.0").status == "succeeded"
    with pytest.raises(IllegalTransition) as caught, cv.store.session() as s:
        release = s.scalars(select(ReleaseRow)).one()
        p = s.scalars(select(PromotionRow)).one()
        move_promotion(s, cv.clock.now(), "tester", release, p, PromotionState.RUNNING)
    assert (caught.value.src, caught.value.dst) == ("succeeded", "running")
    assert "shop@1.0.0/dev" in str(caught.value)
    assert cv.show("shop@1.0.0").nodes[0].state == "succeeded"
    # Through the operations people call: a succeeded release is not retried.
    with pytest.raises(Conflict, match="only a failed release"):
        cv.retry("shop@1.0.0")


def test_final_states_lead_nowhere_but_where_the_tables_say() -> None:
    for state in PromotionState:
        if state.final and state not in (
            PromotionState.SUCCEEDED,
            PromotionState.FAILED,
            PromotionState.REJECTED,
        ):
            assert ALLOWED[state] == frozenset(), state
    assert RELEASE_ALLOWED[ReleaseStatus.RECALLED] == frozenset()
    assert set(ALLOWED) == set(PromotionState)
    assert set(RELEASE_ALLOWED) == set(ReleaseStatus)
