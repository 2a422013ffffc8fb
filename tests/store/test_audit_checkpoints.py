"""Signed checkpoints outside the database: a deleted tail, an emptied table, a chain rebuilt
with the key, a forged or removed checkpoint and a lost key are all reported (issue 11)."""

from __future__ import annotations

import json
import stat
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from conveyor.clock import ManualClock
from conveyor.engine.auditsign import BRANCH, Signer
from conveyor.errors import AuditBroken
from conveyor.store import audit, checkpoints
from conveyor.store.auditkeys import CHAIN_KEY, SIGNING_KEY
from conveyor.store.db import Store, open_store
from conveyor.store.tables import AuditRow

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store("sqlite:///" + str(tmp_path / "x.db"))
    yield opened
    opened.close()


def add(store: Store, n: int, start: int = 0) -> None:
    with store.session() as session:
        for i in range(start, start + n):
            audit.append(session, T0 + timedelta(minutes=i), "alice", "release.note", f"web@{i}")


def sign(store: Store) -> checkpoints.Checkpoint | None:
    return Signer(store, ManualClock(T0 + timedelta(days=1))).sign()


def verify(store: Store) -> tuple[int, list[str]]:
    with store.session() as session:
        return audit.verify(session)


def execute(store: Store, sql: str) -> None:
    with store.engine.begin() as connection:
        connection.execute(text(sql))


def checkpoint_file(store: Store) -> Path:
    path = checkpoints.path_of(store.audit_keys)
    assert path is not None
    return path


def test_keys_and_checkpoints_live_beside_the_database_owner_only(
    store: Store, tmp_path: Path
) -> None:
    add(store, 3)
    made = sign(store)
    directory = tmp_path / "x.db.audit"
    assert made is not None and (made.count, made.last_id) == (3, 3)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for name in (CHAIN_KEY, SIGNING_KEY):
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600
    assert checkpoint_file(store).parent == directory
    assert sign(store) is None  # nothing new: no second line
    assert len(checkpoint_file(store).read_text().splitlines()) == 1
    assert verify(store) == (3, [])


def test_a_deleted_tail_is_reported(store: Store) -> None:
    add(store, 5)
    sign(store)
    execute(store, "DELETE FROM audit_events WHERE id > 3")

    count, problems = verify(store)

    assert count == 3
    assert len(problems) == 1
    assert problems[0].startswith("the trail has 3 events, but it had 5 when checkpoint")
    assert problems[0].endswith("was signed: events were deleted")


def test_an_emptied_table_is_reported(store: Store) -> None:
    add(store, 2)
    sign(store)
    execute(store, "DELETE FROM audit_events")
    count, problems = verify(store)
    assert count == 0
    assert problems and "events were deleted" in problems[0]


def test_a_chain_rebuilt_with_the_key_is_reported(store: Store) -> None:
    """An insider with the database and the chain key edits an event and recomputes every
    hash after it: the chain is consistent, but not what was signed."""
    add(store, 4)
    sign(store)
    key = store.audit_keys.chain(create=False)
    with store.session() as session:
        prev = audit.GENESIS
        for row in session.scalars(select(AuditRow).order_by(AuditRow.id)):
            if row.id == 2:
                row.actor = "mallory"
            row.prev_hash = prev
            row.hash = audit._digest(
                key, prev, row.at, row.actor, row.action, row.subject, row.before, row.after
            )
            prev = row.hash

    _, problems = verify(store)

    assert problems == [
        f"event 4 in the chain is not the one signed at {(T0 + timedelta(days=1)).isoformat()} "
        "(the chain was rebuilt or events removed)"
    ]


def test_an_event_removed_before_a_checkpoint_shifts_what_it_signed(store: Store) -> None:
    add(store, 3)
    sign(store)
    add(store, 2, start=3)
    sign(store)
    execute(store, "DELETE FROM audit_events WHERE id = 1")
    _, problems = verify(store)
    assert any("event 3 in the chain is not the one signed" in p for p in problems)


def test_a_forged_checkpoint_is_reported(store: Store) -> None:
    add(store, 2)
    sign(store)
    path = checkpoint_file(store)
    doc = json.loads(path.read_text())
    doc["count"] = 1  # someone shortens what was signed to hide deletions
    path.write_text(json.dumps(doc) + "\n")

    _, problems = verify(store)

    assert problems == [f"{path}:1: checkpoint not signed by this store's key (forged?)"]


def test_a_removed_checkpoint_is_reported(store: Store) -> None:
    for start in (0, 1, 2):
        add(store, 1, start=start)
        sign(store)
    path = checkpoint_file(store)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], lines[2]]) + "\n")

    _, problems = verify(store)

    assert problems == [f"{path}:2: the checkpoint before this one is missing (removed?)"]


def test_a_lost_key_stops_the_trail_and_fails_verify(store: Store) -> None:
    add(store, 1)
    key_file = store.audit_keys.directory / CHAIN_KEY  # type: ignore[operator]
    key_file.unlink()
    # A store opened anew (the next command): it must not make a new key for old events.
    again = open_store(str(store.engine.url))
    try:
        with pytest.raises(AuditBroken, match=r"keys are missing from .*restore that directory"):
            add(again, 1, start=1)
        count, problems = verify(again)
        assert count == 1
        assert "keys are missing" in problems[0]
    finally:
        again.close()


def test_checkpoints_are_pushed_to_a_git_repository(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = tmp_path / "audit.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    monkeypatch.setenv("CONVEYOR_AUDIT_GIT", f"file://{remote}")
    add(store, 2)
    sign(store)
    add(store, 1, start=2)
    sign(store)

    def show(path: str) -> str:
        return subprocess.run(
            ["git", "--git-dir", str(remote), "show", f"{BRANCH}:{path}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    assert show(checkpoints.FILE) == checkpoint_file(store).read_text()
    assert [json.loads(line)["count"] for line in show(checkpoints.FILE).splitlines()] == [2, 3]
    assert "BEGIN PUBLIC KEY" in show("signing.pub")
    log = subprocess.run(
        ["git", "--git-dir", str(remote), "log", "--format=%s", BRANCH],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    assert len(log) == 2 and log[0].startswith('audit checkpoint {"count": 3')
