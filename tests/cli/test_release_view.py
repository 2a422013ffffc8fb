"""The release view fits the terminal, says its time zone, draws a time axis, says why a
polling task waits, and names every failed environment."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from rich.console import Console

from conveyor.cli.render import release_view
from conveyor.clock import ManualClock
from conveyor.engine.view import ReleaseView
from tests.cli.helpers import ARTIFACT, Cli, write_defs
from tests.engine.test_polling import triggered

BOTH_PRODS_FAIL = """\
apiVersion: conveyor.dev/v1
kind: PromotionPolicy
metadata: {name: all}
spec:
  workflow:
    steps:
      - name: deploy
        tasks:
          - name: write
            uses: run
            with:
              args: [sh, -c, 'case "$0" in prod|prod-eu) exit 3;; esac', "${{ environment.name }}"]
"""


def drawn(view: ReleaseView, now: datetime, width: int, utc: bool = False) -> list[str]:
    console = Console(width=width, record=True, color_system=None)
    console.print(release_view(view, now, width=width, utc=utc))
    return console.export_text().splitlines()


@pytest.fixture
def zone() -> Iterator[None]:
    """Local time is Tokyo's (UTC+09:00, no summer time) for the test."""
    import os

    before = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Tokyo"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


@pytest.fixture
def failed(tmp_path: Path, cli: Cli) -> ReleaseView:
    cli("apply", "-f", str(write_defs(tmp_path, BOTH_PRODS_FAIL)))
    cli("release", "create", "shop", "--version", "1.0.0", "--artifact", ARTIFACT)
    cli("release", "label", "shop@1.0.0", "qa-signoff=passed")
    cli("trigger", "main", "--release", "shop@1.0.0")
    cli.code("run", "--until-idle")
    from conveyor.engine.service import Conveyor

    cv = Conveyor.open(str(tmp_path / "conveyor.db"))
    try:
        return cv.show("shop@1.0.0")
    finally:
        cv.close()


@pytest.mark.parametrize("width", [80, 100, 160])
def test_the_view_fits_and_truncates_nothing_but_the_timeline(
    failed: ReleaseView, width: int
) -> None:
    now = max(n.since for n in failed.nodes)
    lines = drawn(failed, now, width)
    assert all(len(line.rstrip()) <= width for line in lines), "\n".join(lines)
    table = "\n".join(lines)
    for node in failed.nodes:
        assert node.state in table and node.environment in table
        assert node.since.astimezone().strftime("%H:%M:%S") in table
    has_timeline = "timeline" in lines[2]
    assert has_timeline == (width >= 100)
    if width == 160:  # the axis: the span's first and last times under the timeline
        start = min(n.started_at for n in failed.nodes if n.started_at)
        assert any(
            line.strip().startswith(start.astimezone().strftime("%H:%M:%S")) for line in lines
        )


def test_every_failed_environment_is_named(failed: ReleaseView) -> None:
    assert failed.status == "failed"
    text = "\n".join(drawn(failed, failed.nodes[0].since, 160))
    assert "failed in prod, prod-eu:" in text
    assert "prod: task write failed: exit 3" in text and "prod-eu: task write failed" in text


def test_times_are_local_with_their_zone_or_utc(failed: ReleaseView, zone: None) -> None:
    since = failed.nodes[0].since
    local = drawn(failed, since, 160)
    assert local[1].strip() == "times in JST (UTC+09:00)"
    assert since.astimezone().strftime("%H:%M:%S") in local[3]
    assert since.astimezone().utcoffset() is not None and since.hour != since.astimezone().hour
    utc = drawn(failed, since, 160, utc=True)
    assert utc[1].strip() == "times in UTC"
    assert since.strftime("%H:%M:%S") in utc[3]


def test_a_polling_task_says_why_the_node_waits(tmp_path: Path, clock: ManualClock) -> None:
    cv = triggered(tmp_path, clock)
    for _ in range(20):  # passes until the first poll is recorded
        outcome = cv.engine.run_pass()
        if outcome.inflight == 0 and outcome.next_at is not None:
            break
        cv.engine.wake.wait(5)
    view = cv.show("shop@1.0.0")
    cv.close()
    (task,) = view.nodes[0].tasks
    assert task.status == "polling" and task.next_attempt_at == outcome.next_at
    text = "\n".join(drawn(view, clock.now(), 160, utc=True))
    assert outcome.next_at is not None
    assert f"wait-synced polling: not yet, next try {outcome.next_at:%H:%M:%S}" in text
