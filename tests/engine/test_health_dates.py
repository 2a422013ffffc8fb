"""Health reports cannot rewrite history (issue 11): not dated ahead of the clock by more
than the environment's maxClockSkew, nor before the release of their version existed."""

from __future__ import annotations

from datetime import timedelta

import pytest

from conveyor.clock import ManualClock
from conveyor.engine.service import Conveyor
from conveyor.errors import DefinitionError
from tests.conftest import BASE, DIGEST, apply_yaml

M = timedelta(minutes=1)


def test_a_report_dated_ahead_of_the_clock_is_refused(cv: Conveyor, clock: ManualClock) -> None:
    apply_yaml(cv, BASE)
    now = clock.now()
    assert cv.report_health("prod", "cluster-a", "n1", True, "HEALTHY", "1.0.0", at=now + 4 * M)
    with pytest.raises(DefinitionError) as info:
        cv.report_health("prod", "cluster-a", "n1", True, "HEALTHY", "1.0.0", at=now + 10 * M)
    (problem,) = info.value.problems
    assert problem.field == "time"
    assert (
        "10m ahead of Conveyor's clock" in problem.message
        and "maxClockSkew (5m)" in problem.message
    )
    far = now.replace(year=2999)
    with pytest.raises(DefinitionError, match="ahead of Conveyor's clock"):
        cv.report_health("prod", "cluster-a", "n1", True, "HEALTHY", "1.0.0", at=far)


def test_the_skew_is_the_environments_and_bounded(cv: Conveyor, clock: ManualClock) -> None:
    relaxed = BASE.replace(
        "region: asia}}\nspec: {type: production}",
        "region: asia}}\nspec: {type: production, health: {maxClockSkew: 1h}}",
    )
    assert relaxed != BASE
    apply_yaml(cv, relaxed)
    later = clock.now() + 30 * M
    assert cv.report_health("prod-asia", "cluster-x", "n1", True, "HEALTHY", "1.0.0", at=later)
    with pytest.raises(DefinitionError, match="maxClockSkew 2d is over its limit of 1d"):
        apply_yaml(cv, relaxed.replace("maxClockSkew: 1h", "maxClockSkew: 2d"))


def test_a_report_dated_before_its_release_existed_is_refused(
    cv: Conveyor, clock: ManualClock
) -> None:
    apply_yaml(cv, BASE)
    clock.advance(timedelta(days=2))
    cv.create_release("shop", "1.0.0", {"web": f"registry.local/web@{DIGEST}"})
    created = clock.now()
    with pytest.raises(DefinitionError, match=r"before release version 1\.0\.0 existed"):
        cv.report_health("prod", "cluster-a", "n1", True, "HEALTHY", "1.0.0", at=created - M)
    with pytest.raises(DefinitionError, match=r"before release version 1\.0\.0 existed"):
        cv.report_health(
            "prod", "cluster-a", "n1", True, "HEALTHY", "v1.0.0", at=created.replace(year=1900)
        )
    assert cv.report_health("prod", "cluster-a", "n1", True, "HEALTHY", "1.0.0", at=created)
    # A version Conveyor has no release of (deployed by other means) is not judged.
    assert cv.report_health("prod", "cluster-a", "n1", True, "HEALTHY", "7.0.0", at=created - M)
