"""How a push ends: a remote's refusal in its own words, a stale lock named, races won by
trying again until the task's timeout, and "rebase" said only when a rebase moved the commit."""

from __future__ import annotations

import shlex
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from conveyor.actions.gitpush import STALE_LOCK
from conveyor.actions.gitrepo import GitSettings, commit_and_push
from conveyor.clock import ManualClock
from conveyor.errors import TerminalError, TransientError
from tests.actions.helpers import Pusher, git_ctx, writer
from tests.gitrepos import bare_repo, git, log, show


def pre_receive(bare: Path, body: str) -> None:
    """The remote's pre-receive hook runs `body` (a shell script) for every push."""
    hook = bare / "hooks" / "pre-receive"
    hook.write_text(f"#!/bin/sh\n{body}\n")
    hook.chmod(0o755)


def test_a_hook_refusal_fails_in_the_remotes_words_after_one_push(tmp_path: Path) -> None:
    bare = bare_repo(tmp_path, "ops", {"README.md": "x\n"})
    seen = tmp_path / "pushes"
    pre_receive(
        bare,
        f"echo push >> {shlex.quote(str(seen))}\n"
        "echo 'policy: main is frozen until Monday' >&2\n"
        "echo 'ask #release for an exception' >&2\nexit 1",
    )
    with pytest.raises(TerminalError) as caught:
        commit_and_push(git_ctx(tmp_path), GitSettings(repo=f"file://{bare}"), writer(), "write")
    said = str(caught.value)
    assert "pre-receive hook declined" in said
    assert "remote: policy: main is frozen until Monday" in said
    assert "remote: ask #release for an exception" in said
    assert "race" not in said
    assert seen.read_text().splitlines() == ["push"]  # one push, not ten
    assert log(bare) == ["start"]


def test_a_stale_lock_in_the_remote_says_so_and_may_be_retried(tmp_path: Path) -> None:
    bare = bare_repo(tmp_path, "ops", {"README.md": "x\n"})
    (bare / "refs" / "heads" / "main.lock").write_text("")
    clock = ManualClock()
    start = clock.now()
    ctx = git_ctx(tmp_path, clock=clock)
    with pytest.raises(TransientError) as caught:
        commit_and_push(ctx, GitSettings(repo=f"file://{bare}"), writer(), "write")
    said = str(caught.value)
    assert "the remote has a stale lock" in said and "main.lock" in said
    assert "remove it" in said and "race" not in said
    assert log(bare) == ["start"]
    # The back-off between pushes slept on the engine's clock, up to the lock's staleness.
    assert STALE_LOCK <= clock.now() - start < STALE_LOCK + timedelta(seconds=1)


def test_a_lock_held_briefly_is_waited_out_and_no_rebase_is_claimed(tmp_path: Path) -> None:
    bare = bare_repo(tmp_path, "ops", {"README.md": "x\n"})
    lock = bare / "refs" / "heads" / "main.lock"
    lock.write_text("")
    # Another push on the server holds the ref for a while, then lets go.
    threading.Timer(0.6, lock.unlink).start()
    result = commit_and_push(
        git_ctx(tmp_path), GitSettings(repo=f"file://{bare}"), writer(), "write"
    )
    assert result.ok and "committed" in result.output
    assert "rebase" not in result.output
    assert show(bare, "main", "env/prod.txt") == "1.2.3\n"


def test_two_promotions_win_their_races_against_busy_pushers(tmp_path: Path) -> None:
    bare = bare_repo(tmp_path, "ops", {"README.md": "x\n"})
    settings = GitSettings(repo=f"file://{bare}")
    pushers = [
        Pusher(bare, tmp_path / f"pusher{n}", f"pusher{n}", every_s=0.03, limit=150, seconds=10)
        for n in range(2)
    ]
    results: dict[str, list[str]] = {"eu": [], "asia": []}

    def promote(env: str) -> None:
        for n in range(3):  # each push meets the pushers again
            c = git_ctx(tmp_path, env=f"prod-{env}")
            try:
                done = commit_and_push(c, settings, writer(f"overlays/{env}.txt", f"{n}\n"), env)
            except Exception as exc:  # to the assertion below: a thread cannot raise to it
                results[env].append(repr(exc))
                return
            results[env].append(done.output)

    for pusher in pushers:
        pusher.start()
        pusher.started.wait(10)
    threads = [threading.Thread(target=promote, args=(env,)) for env in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for pusher in pushers:
        pusher.stop.set()
        pusher.join(timeout=30)
    assert all(
        len(outputs) == 3 and all("committed" in o for o in outputs) for outputs in results.values()
    ), results
    assert show(bare, "main", "overlays/eu.txt") == show(bare, "main", "overlays/asia.txt") == "2\n"
    subjects = log(bare)
    for pusher in pushers:
        assert pusher.error is None and pusher.landed
        assert all(f"{pusher.name} {n}" in subjects for n in pusher.landed)
        files = git(bare, "ls-tree", "-r", "--name-only", "main", f"{pusher.name}/").split()
        assert len(files) == len(pusher.landed)  # none of its commits was overwritten
