"""`conveyor metrics` prints the Prometheus text exposition."""

from __future__ import annotations

from pathlib import Path

from tests.cli.helpers import Cli, write_defs
from tests.engine.test_metrics import samples


def test_conveyor_metrics_prints_them(tmp_path: Path, cli: Cli) -> None:
    cli("apply", "-f", str(write_defs(tmp_path)))
    text = cli("metrics")
    assert "# TYPE conveyor_releases gauge" in text
    assert samples(text)['conveyor_releases{status="created"}'] == 0
