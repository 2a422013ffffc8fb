"""`conveyor windows ENV`: whether a promotion may start then, which window decides, and
when it next opens."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.helpers import Cli
from tests.conftest import BASE


def test_conveyor_windows_says_what_decides(tmp_path: Path, cli: Cli) -> None:
    defs = BASE.replace(  # the first `spec: {type: production}` is prod-eu's
        "spec: {type: production}",
        "spec:\n  type: production\n  windows:\n"
        "    - {schedule: '0 22 * * 5', duration: 8h, timeZone: Europe/Paris}\n"
        "    - {kind: deny, schedule: '0 0 24 12 *', duration: 2d}",
        1,
    )
    (tmp_path / "defs.yaml").write_text(defs)
    cli("apply", "-f", str(tmp_path / "defs.yaml"))
    text = cli("windows", "prod-eu", "--at", "2026-12-03T12:00:00Z")
    assert text.startswith(
        "prod-eu at 2026-12-03 12:00:00 UTC: closed: outside every allow window;"
    )
    assert "opens 2026-12-04 21:00:00 UTC" in text
    assert "allow '0 22 * * 5' Europe/Paris for 8h  (Environment/prod-eu)" in text
    data = json.loads(cli("windows", "prod-eu", "--at", "2026-12-25T21:30:00Z", "-o", "json"))
    assert data["open"] is False and data["reason"].startswith("deny window")
    # the deny ends inside that night's allow window: open from then on
    assert data["nextOpening"] == "2026-12-26T00:00:00Z"
    assert [w["kind"] for w in data["windows"]] == ["allow", "deny"]
    assert json.loads(cli("windows", "dev", "-o", "json"))["open"] is True
