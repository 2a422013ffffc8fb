"""`conveyor release recall PRODUCT@VERSION --reason`."""

from __future__ import annotations

from pathlib import Path

from conveyor.errors import NotFound
from tests.cli.helpers import applied, conveyor
from tests.conftest import BASE, DIGEST


def test_recall_from_the_command_line(tmp_path: Path) -> None:
    cli = applied(tmp_path, BASE)
    cli("release", "create", "shop", "--version", "1.0.0", "--artifact", f"web=r/web@{DIGEST}")

    said = cli("release", "recall", "shop@1.0.0", "--reason", "crash loop in qa")
    assert said.strip() == "release shop@1.0.0 recalled: crash loop in qa"
    again = cli("release", "recall", "shop@1.0.0", "--reason", "still bad")
    assert again.strip() == "release shop@1.0.0 was already recalled"
    shown = cli("release", "show", "shop@1.0.0")
    assert "recalled" in shown and "crash loop in qa" in shown

    exc = cli.error("release", "recall", "shop@2.0.0", "--reason", "x")
    assert isinstance(exc, NotFound)
    # The reason is required: a usage error from the installed command.
    done = conveyor(tmp_path, "release", "recall", "shop@1.0.0")
    assert done.returncode == 2 and "--reason" in done.stderr
