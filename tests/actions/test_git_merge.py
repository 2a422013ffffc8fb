"""`git.merge` against real repositories: fast-forward, merge commit, conflicts, races."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conveyor.actions import git_merge, gitrefs
from conveyor.actions.base import ActionContext
from conveyor.actions.git_merge import MergeAction, MergeSettings
from conveyor.actions.gitrepo import Git
from conveyor.errors import TerminalError
from tests.gitrepos import bare_repo, git, git_daemon, log, outside_push, show


def template(**labels: str) -> dict[str, Any]:
    return {
        "release": {"product": "shop", "version": "1.2.3", "labels": labels},
        "environment": {"name": "prod", "labels": {}, "settings": {}, "type": "production"},
        "artifacts": {"app": {"digest": labels.get("sha", "")}},
    }


def ctx(tmp_path: Path, raw: dict[str, Any], **labels: str) -> ActionContext:
    return ActionContext(
        raw=raw,
        template=template(**labels),
        workdir=tmp_path,
        timeout_s=60,
        data_dir=tmp_path / "data",
        promotion_id=7,
    )


def on_branch(bare: Path, work: Path, branch: str, path: str, text: str, base: str = "main") -> str:
    """Someone commits `path` on `branch` (made from `base` if new) and pushes; returns its id."""
    if not work.exists():
        git(bare.parent, "clone", "-q", str(bare), str(work))
    git(work, "fetch", "-q", "origin")
    start = branch if git(work, "ls-remote", "origin", f"refs/heads/{branch}") else base
    git(work, "checkout", "-q", "-B", branch, f"origin/{start}")
    (work / path).write_text(text)
    git(work, "add", "-A")
    git(work, "commit", "-qm", f"{branch}: {path}")
    git(work, "push", "-q", "origin", f"HEAD:refs/heads/{branch}")
    return git(work, "rev-parse", "HEAD").strip()


def head(bare: Path, ref: str = "main") -> str:
    return git(bare, "rev-parse", ref).strip()


def contains(bare: Path, sha: str, ref: str = "main") -> bool:
    return (
        Git(bare, {}, [], 30)("merge-base", "--is-ancestor", sha, ref, check=False).returncode == 0
    )


def test_fast_forward_then_rerun_changes_nothing(tmp_path: Path) -> None:
    bare = bare_repo(tmp_path, "ops", {"a.txt": "0\n"})
    staged = on_branch(bare, tmp_path / "w", "staging", "b.txt", "new\n")
    raw = {"repo": f"file://{bare}", "source": "staging"}
    first = MergeAction().run(ctx(tmp_path, raw))
    assert first.ok and "fast-forwarded" in first.output
    assert head(bare) == staged  # no merge commit: main is now exactly staging
    again = MergeAction().run(ctx(tmp_path, raw))
    assert again.ok and again.summary == "unchanged"
    assert head(bare) == staged


def test_diverged_branches_get_a_merge_commit_with_trailers(tmp_path: Path) -> None:
    bare = bare_repo(tmp_path, "ops", {"a.txt": "0\n"})
    staged = on_branch(bare, tmp_path / "w", "staging", "b.txt", "staged\n")
    outside_push(bare, tmp_path / "o", "c.txt", "prod only\n")
    raw = {"repo": f"file://{bare}", "source": "staging"}
    result = MergeAction().run(ctx(tmp_path, raw))
    assert result.ok and "merged" in result.output
    parents = git(bare, "rev-list", "--parents", "-n", "1", "main").split()[1:]
    assert len(parents) == 2 and parents[1] == staged
    body = git(bare, "log", "-1", "--format=%B", "main")
    assert body.startswith("Promote shop 1.2.3 to prod")
    assert "Conveyor-Release: shop@1.2.3" in body and "Conveyor-Environment: prod" in body
    assert (
        show(bare, "main", "b.txt") == "staged\n" and show(bare, "main", "c.txt") == "prod only\n"
    )
    before = head(bare)
    again = MergeAction().run(ctx(tmp_path, raw))
    assert again.ok and again.summary == "unchanged" and head(bare) == before


def test_source_is_a_commit_sha_from_a_template_over_git_daemon(tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    bare = bare_repo(served, "ops", {"a.txt": "0\n"})
    first = on_branch(bare, tmp_path / "w", "staging", "b.txt", "1\n")
    on_branch(bare, tmp_path / "w", "staging", "b.txt", "2\n")  # staging moves on
    outside_push(bare, tmp_path / "o", "c.txt", "x\n")
    with git_daemon(served) as base:
        raw = {"repo": f"{base}/ops.git", "source": "${{ artifacts.app.digest }}"}
        result = MergeAction().run(ctx(tmp_path, raw, sha=first))
        assert result.ok
        again = MergeAction().run(ctx(tmp_path, raw, sha=first))
    assert again.summary == "unchanged"
    assert contains(bare, first) and show(bare, "main", "b.txt") == "1\n"  # that commit, no later


def test_conflict_is_terminal_names_the_file_and_pushes_nothing(tmp_path: Path) -> None:
    bare = bare_repo(tmp_path, "ops", {"a.txt": "0\n"})
    on_branch(bare, tmp_path / "w", "staging", "a.txt", "staging\n")
    outside_push(bare, tmp_path / "o", "a.txt", "prod\n")
    before = head(bare)
    raw = {"repo": f"file://{bare}", "source": "staging"}
    with pytest.raises(TerminalError, match=r"a\.txt"):
        MergeAction().run(ctx(tmp_path, raw))
    assert head(bare) == before
    # The cached clone was left clean: an unrelated promotion still works afterwards.
    outside_push(bare, tmp_path / "o", "a.txt", "staging\n")
    assert MergeAction().run(ctx(tmp_path, raw)).ok


def test_race_with_an_outside_push_redoes_the_merge_and_keeps_their_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = bare_repo(tmp_path, "ops", {"a.txt": "0\n"})
    staged = on_branch(bare, tmp_path / "w", "staging", "b.txt", "staged\n")
    real = gitrefs.push_once
    theirs: list[str] = []

    def someone_pushes_first(g: Git, refspec: str, *options: str) -> bool:
        if not theirs:  # lands between our merge and our push
            theirs.append(outside_push(bare, tmp_path / "o", "c.txt", "theirs\n"))
        return real(g, refspec, *options)

    monkeypatch.setattr(git_merge, "push_once", someone_pushes_first)
    result = MergeAction().run(ctx(tmp_path, {"repo": f"file://{bare}", "source": "staging"}))
    assert result.ok and "retry" in result.output
    assert contains(bare, theirs[0]) and contains(bare, staged)  # both ids kept, none rewritten
    assert show(bare, "main", "c.txt") == "theirs\n" and show(bare, "main", "b.txt") == "staged\n"
    assert len(git(bare, "rev-list", "--parents", "-n", "1", "main").split()) == 3  # a merge
    assert log(bare)[0] == "Promote shop 1.2.3 to prod"


@pytest.mark.parametrize("source", ["--upload-pack=touch x", "-x", "a..b", "main~1", "a b"])
def test_option_like_or_odd_sources_are_refused_before_git_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    monkeypatch.chdir(tmp_path)
    bare = bare_repo(tmp_path, "ops", {"a.txt": "0\n"})
    with pytest.raises(TerminalError, match="source"):
        MergeAction().run(ctx(tmp_path, {"repo": f"file://{bare}", "source": source}))
    # The same value arriving through a template is refused after rendering, too.
    raw = {"repo": f"file://{bare}", "source": "${{ release.labels.evil }}"}
    with pytest.raises(TerminalError, match="source"):
        MergeAction().run(ctx(tmp_path, raw, evil=source))
    assert not list(tmp_path.rglob("x"))


def test_settings_accept_templates_at_apply_time_and_refuse_unknown_sources(
    tmp_path: Path,
) -> None:
    MergeSettings(repo="file:///r", source="${{ artifacts.app.digest }}")
    with pytest.raises(ValueError):
        MergeSettings(repo="file:///r", source="-${{ artifacts.app.digest }}")
    bare = bare_repo(tmp_path, "ops", {"a.txt": "0\n"})
    for source in ("nope", "0123456789abcdef0123456789abcdef01234567"):
        with pytest.raises(TerminalError, match="neither a branch"):
            MergeAction().run(ctx(tmp_path, {"repo": f"file://{bare}", "source": source}))


def test_without_fast_forward_a_merge_commit_carries_the_trailers(tmp_path: Path) -> None:
    from conveyor.actions.git_revert import RevertAction

    bare = bare_repo(tmp_path, "ops", {"app.txt": "v1\n"})
    git(bare, "branch", "prod", "main")
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(bare), str(work))
    (work / "app.txt").write_text("v2\n")
    git(work, "commit", "-qam", "v2")
    git(work, "push", "-q", "origin", "HEAD:main")

    raw = {"repo": f"file://{bare}", "branch": "prod", "source": "main", "fastForward": False}
    result = MergeAction().run(ctx(tmp_path, raw))

    assert result.ok and "merged into" in result.output
    assert "Conveyor-Environment: prod" in git(bare, "log", "-1", "--format=%B", "prod")
    assert show(bare, "prod", "app.txt") == "v2\n"
    reverted = RevertAction().run(ctx(tmp_path, {"repo": f"file://{bare}", "branch": "prod"}))
    assert reverted.ok and show(bare, "prod", "app.txt") == "v1\n"
