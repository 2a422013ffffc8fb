"""Signed checkpoints of the audit trail, written outside the database.

A checkpoint says "the trail had COUNT events and the last one's hash was HEAD", signed with
the store's Ed25519 key. `audit verify` holds the table to every checkpoint: deleting the
last events, emptying the table or rebuilding the chain (even with the chain key) no longer
matches what was signed. Each line also carries the hash of the line before it, so removing
a checkpoint from the middle of the file shows. Copies pushed elsewhere (CONVEYOR_AUDIT_GIT)
survive the machine.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from conveyor.clock import utc
from conveyor.store.auditkeys import AuditKeys
from conveyor.store.tables import AuditRow

FILE = "checkpoints.jsonl"
GENESIS = "0" * 64


@dataclass(frozen=True)
class Checkpoint:
    count: int
    head: str
    last_id: int
    at: str
    prev: str  # sha256 of the line before (GENESIS for the first)
    signature: str

    def payload(self) -> bytes:
        fields = {
            "count": self.count,
            "head": self.head,
            "lastId": self.last_id,
            "at": self.at,
            "prev": self.prev,
        }
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()

    def line(self) -> str:
        doc = json.loads(self.payload()) | {"signature": self.signature}
        return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def path_of(keys: AuditKeys) -> Path | None:
    return None if keys.directory is None else keys.directory / FILE


def newest_id(session: Session) -> int:
    """The id of the newest event: cheap to read on every engine pass."""
    return session.scalar(select(func.max(AuditRow.id))) or 0


def last_signed_id(keys: AuditKeys) -> int:
    """The newest event the last checkpoint covers (0: none yet)."""
    path = path_of(keys)
    line = _last_line(path) if path is not None else None
    try:
        return int(json.loads(line)["lastId"]) if line else 0
    except (ValueError, KeyError, TypeError):
        return 0


def write(session: Session, keys: AuditKeys, now: datetime) -> Checkpoint | None:
    """Sign the trail as `session` sees it; None when there is nothing new to sign or no
    directory to write to (an in-memory store)."""
    path = path_of(keys)
    if path is None:
        return None
    last = session.scalars(select(AuditRow).order_by(AuditRow.id.desc()).limit(1)).first()
    if last is None:
        return None
    signing = keys.signing()
    with _locked(path):
        previous = _last_line(path)
        if previous is not None and _covers(previous, last):
            return None
        count = session.scalar(select(func.count()).select_from(AuditRow)) or 0
        prev = hashlib.sha256(previous.encode()).hexdigest() if previous else GENESIS
        unsigned = Checkpoint(count, last.hash, last.id, utc(now).isoformat(), prev, "")
        signature = base64.b64encode(signing.sign(unsigned.payload())).decode()
        checkpoint = Checkpoint(count, last.hash, last.id, unsigned.at, prev, signature)
        with open(path, "a", encoding="utf-8") as out:
            out.write(checkpoint.line() + "\n")
            out.flush()
            os.fsync(out.fileno())
    return checkpoint


def _covers(line: str, last: AuditRow) -> bool:
    try:
        known = json.loads(line)
    except ValueError:
        return False
    return isinstance(known, dict) and (known.get("lastId"), known.get("head")) == (
        last.id,
        last.hash,
    )


def read(keys: AuditKeys) -> tuple[list[Checkpoint], list[str]]:
    """The checkpoints whose signatures and links hold, and what is wrong with the others."""
    from cryptography.exceptions import InvalidSignature

    path = path_of(keys)
    if path is None or not path.exists():
        return [], []
    public = keys.signing().public_key()
    good: list[Checkpoint] = []
    problems: list[str] = []
    prev = GENESIS
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        where = f"{path}:{number}"
        try:
            doc = json.loads(line)
            checkpoint = Checkpoint(
                int(doc["count"]),
                str(doc["head"]),
                int(doc["lastId"]),
                str(doc["at"]),
                str(doc["prev"]),
                str(doc["signature"]),
            )
            public.verify(base64.b64decode(checkpoint.signature), checkpoint.payload())
        except (ValueError, KeyError, TypeError, InvalidSignature):
            problems.append(f"{where}: checkpoint not signed by this store's key (forged?)")
            prev = hashlib.sha256(line.encode()).hexdigest()
            continue
        if checkpoint.prev != prev:
            problems.append(f"{where}: the checkpoint before this one is missing (removed?)")
        prev = hashlib.sha256(line.encode()).hexdigest()
        good.append(checkpoint)
    return good, problems


def against(checkpoints: list[Checkpoint], hashes: dict[int, str], total: int) -> Iterator[str]:
    """What the trail contradicts: `hashes` maps a position in the chain (1 = first event)
    to its hash, for the positions the checkpoints name."""
    for c in checkpoints:
        if c.count > total:
            yield (
                f"the trail has {total} events, but it had {c.count} when checkpoint "
                f"{c.at} was signed: events were deleted"
            )
        elif hashes.get(c.count) != c.head:
            yield (
                f"event {c.count} in the chain is not the one signed at {c.at} (the chain was "
                "rebuilt or events removed)"
            )


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One writer at a time, across processes, so that each line links to the one before."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path.with_name(FILE + ".lock"), os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _last_line(path: Path) -> str | None:
    if not path.exists():
        return None
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 4096))
        tail = f.read().decode("utf-8", errors="replace").rstrip("\n")
    return tail.rsplit("\n", 1)[-1] if tail else None
