"""When the audit trail is signed: every `CONVEYOR_AUDIT_CHECKPOINT_EVERY` events (default
1,000) while an engine runs, and whenever a process that wrote to the trail closes the store
(each CLI command, an engine at shutdown). With `CONVEYOR_AUDIT_GIT=URL`, each new checkpoint
is also pushed to branch `conveyor-audit` of that repository, off this machine."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from pathlib import Path

from conveyor.clock import Clock
from conveyor.errors import ConveyorError
from conveyor.store import checkpoints
from conveyor.store.db import Store

log = logging.getLogger(__name__)

EVERY = 1000
BRANCH = "conveyor-audit"
GIT_TIMEOUT = 60.0


def every() -> int:
    value = os.environ.get("CONVEYOR_AUDIT_CHECKPOINT_EVERY", "")
    return int(value) if value.isdigit() and int(value) > 0 else EVERY


class Signer:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store, self.clock, self.every = store, clock, every()
        self._signed_id: int | None = None

    def maybe(self) -> None:
        """Sign when `every` events were added since the last checkpoint."""
        with self.store.read() as s:
            newest = checkpoints.newest_id(s)
        if self._signed_id is None:
            self._signed_id = checkpoints.last_signed_id(self.store.audit_keys)
        if newest - self._signed_id >= self.every:
            self.sign()

    def sign(self) -> checkpoints.Checkpoint | None:
        """Sign the trail now if it has events no checkpoint covers."""
        with self.store.read() as s:  # one snapshot of the trail; no engine waits for it
            made = checkpoints.write(s, self.store.audit_keys, self.clock.now())
        if made is None:
            return None
        self._signed_id = made.last_id
        url = os.environ.get("CONVEYOR_AUDIT_GIT")
        directory = self.store.audit_keys.directory
        if url and directory is not None:
            try:
                push(directory, url, made)
            except (OSError, subprocess.SubprocessError) as exc:
                # The checkpoint is on disk; the next push carries it.
                log.warning("could not push the audit checkpoint to %s: %s", url, exc)
        return made

    def sign_quietly(self) -> None:
        """`sign` for a process closing: a trail that cannot be signed is `audit verify`'s
        to report, not a reason for the command that wrote it to fail after the fact."""
        try:
            self.sign()
        except (ConveyorError, OSError) as exc:
            log.warning("the audit trail was not signed: %s", exc)


def push(directory: Path, url: str, made: checkpoints.Checkpoint) -> None:
    """Commit the checkpoint file (and the public key that checks it) on top of the branch
    as `url` has it, and push: never forced, so the remote keeps every earlier version."""
    work = directory / "git"
    if not (work / ".git").exists():
        shutil.rmtree(work, ignore_errors=True)
        _git(directory, "init", "-q", "-b", BRANCH, str(work))
        _git(work, "remote", "add", "origin", url)
    fetched = _git(work, "fetch", "-q", "origin", BRANCH, check=False)
    if fetched.returncode == 0:
        _git(work, "reset", "-q", "--soft", "FETCH_HEAD")
    for name in (checkpoints.FILE, "signing.pub"):
        if (directory / name).exists():
            shutil.copyfile(directory / name, work / name)
            _git(work, "add", name)
    summary = json.dumps({"count": made.count, "head": made.head})
    identity = ("-c", "user.name=conveyor", "-c", "user.email=conveyor@localhost")
    _git(work, *identity, "commit", "-q", "-m", f"audit checkpoint {summary}")
    _git(work, "push", "-q", "origin", f"HEAD:refs/heads/{BRANCH}")


def _git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        check=check,
        capture_output=True,
        timeout=GIT_TIMEOUT,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
    )
