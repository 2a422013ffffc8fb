"""`window`: allow and deny windows (cron, duration, IANA zone), Argo CD's semantics, DST,
the engine waiting for the next opening, `conveyor windows`, and bad windows refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from conveyor.clock import ManualClock
from conveyor.engine.service import Conveyor
from conveyor.errors import DefinitionError
from conveyor.model.window import WindowDef, decide
from tests.conftest import BASE, DIGEST, apply_yaml

H = timedelta(hours=1)
FRIDAY_NIGHT = WindowDef(schedule="0 22 * * 5", duration=8 * H, timeZone="Europe/Paris")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_no_window_is_open() -> None:
    assert decide([], utc(2026, 12, 3, 12)).open


def test_only_inside_an_allow_window_end_exclusive() -> None:
    # Friday 2026-12-04 22:00 in Paris is 21:00 UTC; 8 h later, 05:00 UTC on Saturday.
    inside = decide([FRIDAY_NIGHT], utc(2026, 12, 4, 21, 30))
    assert inside.open and inside.until == utc(2026, 12, 5, 5)
    assert not decide([FRIDAY_NIGHT], utc(2026, 12, 5, 5)).open  # the end is exclusive
    before = decide([FRIDAY_NIGHT], utc(2026, 12, 3, 12))
    assert not before.open and before.reason == "outside every allow window"
    assert before.next_opening == utc(2026, 12, 4, 21)


def test_deny_wins_and_the_next_opening_skips_it() -> None:
    freeze = WindowDef(kind="deny", schedule="0 0 4 12 *", duration=48 * H)  # Dec 4-5 UTC
    closed = decide([FRIDAY_NIGHT, freeze], utc(2026, 12, 4, 21, 30))
    assert not closed.open and closed.reason.startswith("deny window deny '0 0 4 12 *'")
    assert closed.next_opening == utc(2026, 12, 11, 21)  # the next Friday night
    only_deny = decide([freeze], utc(2026, 12, 4, 12))
    assert not only_deny.open and only_deny.next_opening == utc(2026, 12, 6)


def test_a_window_across_a_dst_change_lasts_its_real_duration() -> None:
    # Paris leaves summer time on 2026-10-25 at 03:00 (back to 02:00): a window opening
    # Saturday 22:00 (20:00 UTC) for 8 h ends at 04:00 UTC, 05:00 local winter time.
    saturday = WindowDef(schedule="0 22 * * 6", duration=8 * H, timeZone="Europe/Paris")
    decision = decide([saturday], utc(2026, 10, 25, 3, 59))
    assert decision.open and decision.until == utc(2026, 10, 25, 4)
    assert not decide([saturday], utc(2026, 10, 25, 4)).open


@pytest.mark.parametrize(
    ("window", "says"),
    [
        ("{schedule: '61 * * * *', duration: 1h}", "is not a cron schedule"),
        ("{schedule: '0 22 * * 5', duration: 1h, timeZone: Mars/Olympus}", "unknown time zone"),
        ("{schedule: '0 22 * * 5', duration: 0s}", "more than 0s and at most 7d"),
        ("{schedule: '0 22 * * 5', duration: 8d}", "more than 0s and at most 7d"),
    ],
)
def test_bad_windows_are_refused_at_apply(cv: Conveyor, window: str, says: str) -> None:
    bad = BASE.replace(
        "spec: {type: production}", f"spec: {{type: production, windows: [{window}]}}", 1
    )
    with pytest.raises(DefinitionError, match=says):
        apply_yaml(cv, bad)


PRODUCT_WINDOW = """
---
apiVersion: conveyor.dev/v1
kind: PromotionFlow
metadata: {name: main}
spec:
  version: "1.00"
  product: shop
  triggerEnvironment: dev
  environments: [{name: prod, dependsOn: [dev]}]
---
apiVersion: conveyor.dev/v1
kind: PromotionPolicy
metadata: {name: all}
spec:
  workflow:
    steps:
      - name: deploy
        tasks: [{name: ok, uses: run, with: {args: ["true"]}}]
"""


def test_the_engine_waits_for_the_products_maintenance_window(
    cv: Conveyor, clock: ManualClock
) -> None:
    # Seed 001: the product is promoted only in its maintenance window, Fridays 22:00 Paris.
    defs = BASE.replace(
        "spec:\n  artifacts:",
        "spec:\n  windows: [{schedule: '0 22 * * 5', duration: 8h, timeZone: Europe/Paris}]\n"
        "  artifacts:",
        1,
    )
    assert defs != BASE
    apply_yaml(cv, defs + PRODUCT_WINDOW)
    clock.set(utc(2026, 12, 3, 12))  # a Thursday
    cv.create_release("shop", "1.0.0", {"web": f"registry.local/web@{DIGEST}"})
    cv.trigger("main", "shop@1.0.0")
    cv.engine.run_pass()
    dev = cv.show("shop@1.0.0").nodes[0]
    assert dev.state == "waiting" and "opens 2026-12-04 21:00 UTC" in dev.detail
    cv.run_until_idle()
    view = cv.show("shop@1.0.0")
    assert view.status == "succeeded"
    assert all(n.started_at and n.started_at >= utc(2026, 12, 4, 21) for n in view.nodes)
