"""The audit trail is a hash chain: any edit, relink or removal of an event shows in verify."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from conveyor.store import audit
from conveyor.store.db import Store, open_store
from conveyor.store.tables import AuditRow

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store("sqlite:///" + str(tmp_path / "x.db"))
    yield opened
    opened.close()


@pytest.fixture
def events(store: Store) -> list[int]:
    """Three events, appended in two units of work; their ids in order."""
    with store.session() as session:
        first = audit.append(
            session,
            T0,
            "alice",
            "resource.apply",
            "Product/web",
            after={"kind": "Product", "revision": 1},
        )
        second = audit.append(
            session,
            T0 + timedelta(minutes=1),
            "alice",
            "release.create",
            "web@1.2.3",
            after={"status": "pending", "labels": {"b": 2, "a": 1}},
        )
        session.flush()  # append leaves flushing to the unit of work; ids come with it
        ids = [first.id, second.id]
    with store.session() as session:
        third = audit.append(
            session,
            T0 + timedelta(minutes=2),
            "engine",
            "release.running",
            "web@1.2.3",
            before={"status": "pending"},
            after={"status": "running"},
        )
        session.flush()
        ids.append(third.id)
    return ids


def verify(store: Store) -> tuple[int, list[str]]:
    with store.session() as session:
        return audit.verify(session)


def execute(store: Store, sql: str, **params: Any) -> None:
    with store.engine.begin() as connection:
        connection.execute(text(sql), params)


def rows(store: Store) -> list[AuditRow]:
    with store.session() as session:
        return list(session.scalars(select(AuditRow).order_by(AuditRow.id)))


def test_empty_trail_verifies(store: Store) -> None:
    assert verify(store) == (0, [])


def test_appended_events_verify(store: Store, events: list[int]) -> None:
    assert verify(store) == (3, [])


def test_each_event_links_to_the_one_before(store: Store, events: list[int]) -> None:
    chain = rows(store)
    assert [row.id for row in chain] == events
    assert chain[0].prev_hash == audit.GENESIS
    for before, after in pairwise(chain):
        assert after.prev_hash == before.hash
    assert len({row.hash for row in chain}) == 3
    assert all(len(row.hash) == 64 for row in chain)


def _two_events(store: Store) -> list[str]:
    with store.session() as session:
        audit.append(
            session, T0, "alice", "resource.apply", "Product/web", after={"x": 1, "y": [1, 2]}
        )
        audit.append(
            session, T0, "alice", "resource.apply", "Product/web", after={"y": [1, 2], "x": 1}
        )
    return [row.hash for row in rows(store)]


def test_same_content_and_key_same_hash(tmp_path: Path) -> None:
    """The hash depends on the content and the store's key only."""
    first = open_store("sqlite:///" + str(tmp_path / "a.db"))
    # A second store sharing the first one's keys (as engines on several machines would).
    second = open_store("sqlite:///" + str(tmp_path / "b.db"), audit_keys=first.audit_keys)
    third = open_store("sqlite:///" + str(tmp_path / "c.db"))
    try:
        hashes = [_two_events(s) for s in (first, second, third)]
    finally:
        for s in (first, second, third):
            s.close()
    assert hashes[0] == hashes[1]
    assert hashes[0][0] != hashes[0][1]  # same content, different place in the chain
    assert hashes[2][0] != hashes[0][0]  # another store's key: another chain


def test_edited_after_is_reported(store: Store, events: list[int]) -> None:
    edited = events[1]
    execute(
        store,
        'UPDATE audit_events SET "after" = :doc WHERE id = :id',
        doc=json.dumps({"status": "approved", "labels": {"b": 2, "a": 1}}),
        id=edited,
    )

    count, problems = verify(store)

    assert count == 3
    assert problems == [f"event {edited}: content does not match its hash (edited?)"]


def test_edited_actor_is_reported(store: Store, events: list[int]) -> None:
    execute(store, "UPDATE audit_events SET actor = 'mallory' WHERE id = :id", id=events[0])
    _, problems = verify(store)
    assert problems == [f"event {events[0]}: content does not match its hash (edited?)"]


def test_relinked_prev_hash_is_reported(store: Store, events: list[int]) -> None:
    relinked = events[2]
    execute(store, "UPDATE audit_events SET prev_hash = :h WHERE id = :id", h="f" * 64, id=relinked)

    count, problems = verify(store)

    assert count == 3
    assert problems[0].startswith(f"event {relinked}: links to ffffffffffff, expected ")
    # prev_hash is part of what is hashed, so the event no longer matches its hash either.
    assert problems[1:] == [f"event {relinked}: content does not match its hash (edited?)"]
    assert all(p.startswith(f"event {relinked}:") for p in problems)


def test_rehashing_an_edit_without_the_key_is_reported(store: Store, events: list[int]) -> None:
    """Someone with the database but not the key recomputes the edited event's hash the
    way an unkeyed chain would: it matches nothing."""
    edited = events[1]
    row = next(r for r in rows(store) if r.id == edited)
    forged_after = {"status": "approved"}
    body = [
        row.prev_hash,
        row.at.isoformat(),
        row.actor,
        row.action,
        row.subject,
        None,
        forged_after,
    ]
    forged = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    execute(
        store,
        'UPDATE audit_events SET "after" = :doc, hash = :h WHERE id = :id',
        doc=json.dumps(forged_after),
        h=forged.hexdigest(),
        id=edited,
    )

    _, problems = verify(store)

    assert problems[0] == f"event {edited}: content does not match its hash (edited?)"
    assert problems[1].startswith(f"event {events[2]}: links to ")


def test_rehashing_an_edit_with_the_key_breaks_the_next_link(
    store: Store, events: list[int]
) -> None:
    edited, following = events[1], events[2]
    row = next(r for r in rows(store) if r.id == edited)
    forged_after = {"status": "approved"}
    key = store.audit_keys.chain(create=False)
    forged = audit._digest(
        key, row.prev_hash, row.at, row.actor, row.action, row.subject, row.before, forged_after
    )
    execute(
        store,
        'UPDATE audit_events SET "after" = :doc, hash = :h WHERE id = :id',
        doc=json.dumps(forged_after),
        h=forged,
        id=edited,
    )

    _, problems = verify(store)

    assert len(problems) == 1
    assert problems[0].startswith(f"event {following}: links to ")


def test_removed_event_is_reported(store: Store, events: list[int]) -> None:
    execute(store, "DELETE FROM audit_events WHERE id = :id", id=events[1])
    count, problems = verify(store)
    assert count == 2
    assert len(problems) == 1
    assert problems[0].startswith(f"event {events[2]}: links to ")


def test_chain_continues_across_sessions_after_tampering_is_found(
    store: Store, events: list[int]
) -> None:
    """New events link to the newest stored hash, whatever happened before it."""
    with store.session() as session:
        new = audit.append(session, T0 + timedelta(hours=1), "bob", "release.done", "web@1.2.3")
    assert new.prev_hash == rows(store)[-2].hash
    assert verify(store) == (4, [])


def test_non_utc_timestamp_verifies(store: Store) -> None:
    with store.session() as session:
        audit.append(
            session,
            datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=2))),
            "alice",
            "resource.apply",
            "Product/web",
        )
    assert verify(store) == (1, [])


def test_an_event_of_a_rolled_back_savepoint_is_not_linked_to(store: Store) -> None:
    """A savepoint rolled back takes its events with it; the next one links past them."""
    with store.session() as session:
        first = audit.append(session, T0, "alice", "release.create", "web@1.2.3")
        with pytest.raises(RuntimeError), session.begin_nested():
            audit.append(session, T0, "alice", "release.trigger", "web@1.2.3")
            raise RuntimeError("the trigger was refused")
        last = audit.append(session, T0, "alice", "release.create", "web@1.2.4")
    assert last.prev_hash == first.hash
    assert verify(store) == (2, [])
