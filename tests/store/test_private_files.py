"""What Conveyor writes to disk is its user's alone (issue 11): a new SQLite database and
its WAL files 0600, the git working copies' directories 0700."""

from __future__ import annotations

import stat
import threading
import time
from pathlib import Path

from conveyor.actions.gitcopies import WorkingCopies
from conveyor.store.db import open_store
from tests.conftest import BASE, apply_yaml


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_database_and_its_wal_are_private(tmp_path: Path) -> None:
    db = tmp_path / "conveyor.db"
    store = open_store(str(db))
    from conveyor.engine.service import Conveyor

    cv = Conveyor(store)
    apply_yaml(cv, BASE)  # writes: the WAL and its index exist now
    assert mode(db) == 0o600
    for companion in (tmp_path / "conveyor.db-wal", tmp_path / "conveyor.db-shm"):
        assert companion.exists() and mode(companion) == 0o600, companion
    cv.close()


def test_an_existing_database_keeps_its_mode(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    db.touch(mode=0o640)
    db.chmod(0o640)
    open_store(str(db)).close()
    assert mode(db) == 0o640


def test_working_copies_live_in_private_directories(tmp_path: Path) -> None:
    copies = WorkingCopies.under(tmp_path / "data")
    clone = copies.path("file:///srv/ops.git", "main")
    with copies.flock(clone, time.monotonic() + 5, threading.Event()):
        pass
    assert mode(tmp_path / "data") == 0o700
    assert mode(tmp_path / "data" / "repos") == 0o700
