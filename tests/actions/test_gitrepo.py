"""The shared git machinery, against real repositories (file:// and git daemon)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from conveyor.actions.base import ActionContext
from conveyor.actions.gitrepo import GitSettings, commit_and_push, inside
from conveyor.errors import TerminalError
from tests.actions.helpers import while_busy
from tests.gitrepos import bare_repo, git, git_daemon, log, outside_push, show

TEMPLATE = {
    "release": {"product": "shop", "version": "1.2.3", "labels": {}},
    "environment": {"name": "prod", "labels": {}, "settings": {}, "type": "production"},
}


def ctx(tmp_path: Path, promotion: int = 7, env: str = "prod") -> ActionContext:
    return ActionContext(
        raw={},
        template={**TEMPLATE, "environment": {**TEMPLATE["environment"], "name": env}},
        workdir=tmp_path,
        timeout_s=60,
        data_dir=tmp_path / "data",
        promotion_id=promotion,
    )


def writer(rel: str, text: str) -> Callable[[Path], list[str]]:
    def edit(root: Path) -> list[str]:
        target = inside(root, rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        return [rel]

    return edit


def test_commit_has_message_and_trailers_and_rerun_makes_no_commit(tmp_path: Path) -> None:
    bare = bare_repo(tmp_path, "ops", {"README.md": "x\n"})
    settings = GitSettings(repo=f"file://{bare}")
    first = commit_and_push(ctx(tmp_path), settings, writer("env/prod.txt", "v1\n"), "write")
    assert first.ok and "committed" in first.output
    assert show(bare, "main", "env/prod.txt") == "v1\n"
    body = git(bare, "log", "-1", "--format=%B", "main")
    assert body.startswith("Promote shop 1.2.3 to prod")
    assert "Conveyor-Release: shop@1.2.3" in body
    assert "Conveyor-Environment: prod" in body and "Conveyor-Promotion: 7" in body
    again = commit_and_push(ctx(tmp_path), settings, writer("env/prod.txt", "v1\n"), "write")
    assert again.ok and "nothing to commit" in again.output
    assert len(log(bare)) == 2


def test_race_with_an_outside_push_rebases_and_keeps_their_commit(tmp_path: Path) -> None:
    bare = bare_repo(tmp_path, "ops", {"README.md": "x\n"})
    settings = GitSettings(repo=f"file://{bare}")
    commit_and_push(ctx(tmp_path), settings, writer("a.txt", "1\n"), "write")

    def edit_then_someone_pushes(root: Path) -> list[str]:
        (root / "b.txt").write_text("mine\n")
        outside_push(bare, tmp_path / "other", "c.txt", "theirs\n")  # lands before our push
        return ["b.txt"]

    result = commit_and_push(ctx(tmp_path), settings, edit_then_someone_pushes, "write")
    assert result.ok and "rebase" in result.output
    assert show(bare, "main", "b.txt") == "mine\n"
    assert show(bare, "main", "c.txt") == "theirs\n"


def test_conflicting_outside_push_is_a_terminal_failure_naming_the_file(tmp_path: Path) -> None:
    bare = bare_repo(tmp_path, "ops", {"a.txt": "0\n"})
    settings = GitSettings(repo=f"file://{bare}")

    def edit_then_conflict(root: Path) -> list[str]:
        (root / "a.txt").write_text("mine\n")
        outside_push(bare, tmp_path / "other", "a.txt", "theirs\n")
        return ["a.txt"]

    with pytest.raises(TerminalError, match=r"a\.txt"):
        commit_and_push(ctx(tmp_path), settings, edit_then_conflict, "write")
    assert show(bare, "main", "a.txt") == "theirs\n"


def test_git_daemon_remote(tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    bare = bare_repo(served, "ops", {"README.md": "x\n"})
    with git_daemon(served) as base:
        settings = GitSettings(repo=f"{base}/ops.git")
        result = commit_and_push(ctx(tmp_path), settings, writer("d.txt", "1\n"), "write")
    assert result.ok
    assert show(bare, "main", "d.txt") == "1\n"


@pytest.mark.parametrize("path", ["../escape.txt", "/etc/passwd", "a/../../b", "--upload-pack=x"])
def test_paths_may_not_leave_the_repository(tmp_path: Path, path: str) -> None:
    with pytest.raises(TerminalError):
        inside(tmp_path, path)


def test_symlink_out_of_the_repository_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(TerminalError, match="outside"):
        inside(root, "link/secret.txt")


def test_option_like_repo_and_branch_are_refused() -> None:
    with pytest.raises(ValueError):
        GitSettings(repo="--upload-pack=touch /tmp/x")
    with pytest.raises(ValueError):
        GitSettings(repo="file:///x", branch="--force")


def test_batch_shares_one_commit_among_a_releases_waiting_promotions(tmp_path: Path) -> None:
    bare = bare_repo(tmp_path, "ops", {"README.md": "x\n"})
    settings = GitSettings(repo=f"file://{bare}", batch=True)
    results = {}

    def promote(env: str, promotion: int) -> Callable[[], None]:
        def call() -> None:
            c = ctx(tmp_path, promotion, env)
            results[env] = commit_and_push(c, settings, writer(f"{env}.txt", "1.2.3\n"), env)

        return call

    # The branch is busy while both promotions arrive.
    calls = [promote(e, n) for n, e in enumerate(["prod-eu", "prod-asia"], 1)]
    while_busy(tmp_path / "data", tmp_path, settings, calls)
    assert all(r.ok for r in results.values())
    (subject, first) = log(bare)
    assert first == "start"
    assert subject in (
        "Promote shop 1.2.3 to prod-eu, prod-asia",
        "Promote shop 1.2.3 to prod-asia, prod-eu",
    )
    body = git(bare, "log", "-1", "--format=%B", "main")
    assert "Conveyor-Environment: prod-eu" in body and "Conveyor-Environment: prod-asia" in body
    assert show(bare, "main", "prod-eu.txt") == show(bare, "main", "prod-asia.txt") == "1.2.3\n"
    assert all("one commit for 2 promotions" in r.output for r in results.values())
