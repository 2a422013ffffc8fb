"""`git.revert` against real repositories: find a promotion by its trailers and undo it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conveyor.actions.base import ActionContext
from conveyor.actions.git_merge import MergeAction
from conveyor.actions.git_revert import RevertAction, RevertSettings
from conveyor.actions.gitpush import Pushed, push
from conveyor.actions.gitrepo import Git, GitSettings, commit_and_push
from conveyor.errors import TerminalError
from tests.actions.helpers import while_busy
from tests.gitrepos import bare_repo, git, git_daemon, log, outside_push, show


def ctx(
    tmp_path: Path, raw: dict[str, Any], version: str = "1.2.3", env: str = "prod", **labels: str
) -> ActionContext:
    return ActionContext(
        raw=raw,
        template={
            "release": {"product": "shop", "version": version, "labels": labels},
            "environment": {"name": env, "labels": {}, "settings": {}, "type": "production"},
        },
        workdir=tmp_path,
        timeout_s=60,
        data_dir=tmp_path / "data",
        promotion_id=7,
    )


def promote(tmp_path: Path, repo: str, path: str, text: str, **where: str) -> None:
    """A Conveyor promotion commit (with trailers) that writes `path`."""

    def edit(root: Path) -> list[str]:
        (root / path).write_text(text)
        return [path]

    assert commit_and_push(ctx(tmp_path, {}, **where), GitSettings(repo=repo), edit, "write").ok


def test_revert_restores_the_file_and_a_rerun_reverts_nothing(tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    bare = bare_repo(served, "ops", {"a.txt": "v1\n"})
    with git_daemon(served) as base:
        repo = f"{base}/ops.git"
        promote(tmp_path, repo, "a.txt", "v2\n")
        promoted = git(bare, "rev-parse", "main").strip()
        result = RevertAction().run(ctx(tmp_path, {"repo": repo}))
        assert result.ok and promoted[:12] in result.output
        assert show(bare, "main", "a.txt") == "v1\n"
        body = git(bare, "log", "-1", "--format=%B", "main")
        assert body.startswith('Revert "Promote shop 1.2.3 to prod"')
        assert f"Conveyor-Revert-Of: {promoted}" in body and "Conveyor-Environment: prod" in body
        count = len(log(bare))
        again = RevertAction().run(ctx(tmp_path, {"repo": repo}))
    assert again.ok and again.summary == "unchanged" and len(log(bare)) == count


def test_the_trailers_must_match_exactly_and_every_promotion_commit_is_undone(
    tmp_path: Path,
) -> None:
    bare = bare_repo(tmp_path, "ops", {"a.txt": "v1\n", "b.txt": "-\n", "c.txt": "-\n"})
    repo = f"file://{bare}"
    promote(tmp_path, repo, "a.txt", "v2\n")
    promote(tmp_path, repo, "a.txt", "v3\n")  # promoted again: both commits are undone
    promote(tmp_path, repo, "b.txt", "1.2.30\n", version="1.2.30")  # grep also finds it
    promote(tmp_path, repo, "c.txt", "staging\n", env="staging")
    raw = {"repo": repo, "release": "shop@1.2.3"}  # given explicitly this time
    assert RevertAction().run(ctx(tmp_path, raw)).ok
    assert show(bare, "main", "a.txt") == "v1\n"
    assert show(bare, "main", "b.txt") == "1.2.30\n" and show(bare, "main", "c.txt") == "staging\n"


def test_nothing_promoted_is_a_terminal_error(tmp_path: Path) -> None:
    bare = bare_repo(tmp_path, "ops", {"a.txt": "v1\n"})
    promote(tmp_path, f"file://{bare}", "a.txt", "v2\n", env="staging")
    with pytest.raises(TerminalError, match=r"no commit on main promoted shop@1\.2\.3 to prod"):
        RevertAction().run(ctx(tmp_path, {"repo": f"file://{bare}"}))


def test_conflict_is_terminal_names_the_file_and_pushes_nothing(tmp_path: Path) -> None:
    bare = bare_repo(tmp_path, "ops", {"a.txt": "v1\n"})
    promote(tmp_path, f"file://{bare}", "a.txt", "v2\n")
    outside_push(bare, tmp_path / "o", "a.txt", "hand edit\n")
    before = git(bare, "rev-parse", "main")
    with pytest.raises(TerminalError, match=r"a\.txt"):
        RevertAction().run(ctx(tmp_path, {"repo": f"file://{bare}"}))
    assert git(bare, "rev-parse", "main") == before


def test_race_with_an_outside_push_keeps_their_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = bare_repo(tmp_path, "ops", {"a.txt": "v1\n"})
    promote(tmp_path, f"file://{bare}", "a.txt", "v2\n")
    theirs: list[str] = []

    def someone_pushes_first(g: Git, branch: str, *rest: Any) -> Pushed:
        theirs.append(outside_push(bare, tmp_path / "o", "b.txt", "theirs\n"))
        return push(g, branch, *rest)

    monkeypatch.setattr("conveyor.actions.git_revert.push", someone_pushes_first)
    result = RevertAction().run(ctx(tmp_path, {"repo": f"file://{bare}"}))
    assert result.ok and "rebase" in result.output
    assert show(bare, "main", "a.txt") == "v1\n" and show(bare, "main", "b.txt") == "theirs\n"
    assert git(bare, "rev-parse", "main~1").strip() == theirs[0]


def test_a_merge_promotion_is_reverted_against_the_target_branch(tmp_path: Path) -> None:
    bare = bare_repo(tmp_path, "ops", {"a.txt": "v1\n"})
    work = tmp_path / "w"
    git(tmp_path, "clone", "-q", str(bare), str(work))
    git(work, "checkout", "-q", "-b", "staging")
    (work / "b.txt").write_text("staged\n")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "staged")
    git(work, "push", "-q", "origin", "staging")
    outside_push(bare, tmp_path / "o", "c.txt", "prod\n")  # so the merge is a real merge
    raw = {"repo": f"file://{bare}"}
    assert MergeAction().run(ctx(tmp_path, {**raw, "source": "staging"})).ok
    assert RevertAction().run(ctx(tmp_path, raw)).ok
    assert "b.txt" not in git(bare, "ls-tree", "--name-only", "main")
    assert show(bare, "main", "c.txt") == "prod\n"


@pytest.mark.parametrize(
    ("field", "value"),
    [("release", "--upload-pack=touch x"), ("release", "shop"), ("environment", "-x\n")],
)
def test_option_like_values_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, field: str, value: str
) -> None:
    monkeypatch.chdir(tmp_path)
    bare = bare_repo(tmp_path, "ops", {"a.txt": "v1\n"})
    with pytest.raises(TerminalError, match=field):
        RevertAction().run(ctx(tmp_path, {"repo": f"file://{bare}", field: value}))
    raw = {"repo": f"file://{bare}", field: "${{ release.labels.evil }}"}
    with pytest.raises(TerminalError, match=field):
        RevertAction().run(ctx(tmp_path, raw, evil=value))
    assert not list(tmp_path.rglob("x"))


def test_values_that_merely_contain_options_are_searched_for_as_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    bare = bare_repo(tmp_path, "ops", {"a.txt": "v1\n"})
    promote(tmp_path, f"file://{bare}", "a.txt", "v2\n")
    raw = {"repo": f"file://{bare}", "release": "shop@1 --upload-pack=touch x", "environment": "x"}
    with pytest.raises(TerminalError, match="no commit"):
        RevertAction().run(ctx(tmp_path, raw))
    assert not list(tmp_path.rglob("x"))
    assert RevertSettings(repo="file:///r").release.startswith("${{")


def test_a_batch_commit_is_reverted_for_one_environment_only(tmp_path: Path) -> None:
    bare = bare_repo(tmp_path, "ops", {"eu.txt": "1.0\n", "asia.txt": "1.0\n"})
    settings = GitSettings(repo=f"file://{bare}", batch=True)

    def promote_to(env: str, file: str) -> Callable[[], None]:
        def edit(root: Path) -> list[str]:
            (root / file).write_text("1.2.3\n")
            return [file]

        def call() -> None:
            assert commit_and_push(ctx(tmp_path, {}, env=env), settings, edit, env).ok

        return call

    # Both arrive while the branch is busy: one shared commit.
    calls = [promote_to("prod-eu", "eu.txt"), promote_to("prod-asia", "asia.txt")]
    while_busy(tmp_path / "data", tmp_path, settings, calls)
    assert len(log(bare)) == 2, "one commit for both environments"

    result = RevertAction().run(ctx(tmp_path, {"repo": f"file://{bare}"}, env="prod-eu"))

    assert result.ok
    assert show(bare, "main", "eu.txt") == "1.0\n"
    assert show(bare, "main", "asia.txt") == "1.2.3\n", "prod-asia keeps its promotion"
