"""`conveyor simulate` on a PostgreSQL store: the store is copied, in one snapshot, into a
scratch SQLite file, and the forecast is the one the same store on SQLite gives."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from conveyor.store.db import open_store
from conveyor.store.tables import AuditRow, PromotionRow
from tests.cli.helpers import Cli
from tests.cli.simulations import DEFS, HEALTHY, history, lines
from tests.conftest import DIGEST
from tests.pg import Postgres


def test_a_postgresql_store_forecasts_as_the_same_store_on_sqlite(
    pg: Postgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_AUDIT_DIR", str(tmp_path / "audit"))
    defs = tmp_path / "defs.yaml"
    defs.write_text(DEFS.replace("TOUCHED", str(tmp_path / "touched.txt")))
    (tmp_path / "lite").mkdir()
    url = pg.database()
    on_sqlite, on_pg = Cli(tmp_path / "lite"), Cli(tmp_path, db=url)
    for cli in (on_sqlite, on_pg):
        cli("apply", "-f", str(defs))
        cli("release", "create", "shop", "--version", "1.0.0", "--artifact",
            f"web=registry.local/web@{DIGEST}")  # fmt: skip
    store = open_store(url)

    def state() -> tuple[int, list[str]]:
        with store.read() as s:
            events = s.scalar(select(func.count()).select_from(AuditRow)) or 0
            return events, sorted(s.scalars(select(PromotionRow.state)))

    before = state()
    args = ("simulate", "shop@1.0.0", "--history", history(tmp_path, HEALTHY))
    forecast = on_pg(*args)
    assert forecast == on_sqlite(*args)
    assert lines(forecast)["prod"] == "promoted 2026-01-05 12:20 UTC (+3h20m)"
    assert state() == before  # the real store was only read
    assert not (tmp_path / "touched.txt").exists()  # no task really ran
    store.close()
