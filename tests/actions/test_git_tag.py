"""`git.tag` against real repositories: create, re-run, refuse or force a move, races."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conveyor.actions.base import ActionContext
from conveyor.actions.git_tag import TagAction, TagSettings
from conveyor.actions.gitrefs import push_once
from conveyor.actions.gitrepo import Git
from conveyor.errors import TerminalError
from tests.gitrepos import bare_repo, git, git_daemon, outside_push

TAG = "v${{ release.version }}-${{ environment.name }}"


def ctx(tmp_path: Path, raw: dict[str, Any], **labels: str) -> ActionContext:
    return ActionContext(
        raw=raw,
        template={
            "release": {"product": "shop", "version": "1.2.3", "labels": labels},
            "environment": {"name": "prod", "labels": {}, "settings": {}, "type": "production"},
            "artifacts": {"app": {"digest": labels.get("sha", "")}},
        },
        workdir=tmp_path,
        timeout_s=60,
        data_dir=tmp_path / "data",
        promotion_id=7,
    )


def rev(bare: Path, ref: str) -> str:
    return git(bare, "rev-parse", ref).strip()


def tag_elsewhere(bare: Path, work: Path, name: str, at: str) -> None:
    """Someone else pushes a tag `name` at commit `at`."""
    if not work.exists():
        git(bare.parent, "clone", "-q", str(bare), str(work))
    git(work, "fetch", "-q", "origin")
    git(work, "tag", "-f", "-a", "-m", "theirs", name, at)
    git(work, "push", "-q", "-f", "origin", f"refs/tags/{name}")


def test_annotated_tag_on_the_branch_head_then_rerun_changes_nothing(tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    bare = bare_repo(served, "ops", {"a.txt": "0\n"})
    with git_daemon(served) as base:
        raw = {"repo": f"{base}/ops.git", "tag": TAG}
        first = TagAction().run(ctx(tmp_path, raw))
        assert first.ok and "pushed v1.2.3-prod" in first.output
        tag_object = rev(bare, "refs/tags/v1.2.3-prod")
        again = TagAction().run(ctx(tmp_path, raw))
    assert again.ok and again.summary == "unchanged"
    assert rev(bare, "refs/tags/v1.2.3-prod") == tag_object  # not re-created
    assert git(bare, "cat-file", "-t", tag_object).strip() == "tag"
    assert rev(bare, "v1.2.3-prod^{commit}") == rev(bare, "main")
    body = git(bare, "tag", "-l", "--format=%(contents)", "v1.2.3-prod")
    assert body.startswith("Promote shop 1.2.3 to prod")
    assert "Conveyor-Release: shop@1.2.3" in body and "Conveyor-Promotion: 7" in body


def test_ref_may_be_a_commit_sha_or_another_branch(tmp_path: Path) -> None:
    bare = bare_repo(tmp_path, "ops", {"a.txt": "0\n"})
    first = rev(bare, "main")
    outside_push(bare, tmp_path / "o", "b.txt", "1\n")
    git(bare, "branch", "staging", first)
    by_sha = {"repo": f"file://{bare}", "tag": "by-sha", "ref": "${{ artifacts.app.digest }}"}
    assert TagAction().run(ctx(tmp_path, by_sha, sha=first)).ok
    assert TagAction().run(ctx(tmp_path, {**by_sha, "tag": "by-branch", "ref": "staging"})).ok
    assert rev(bare, "by-sha^{commit}") == first == rev(bare, "by-branch^{commit}")


def test_tag_at_another_commit_is_refused_unless_forced(tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    bare = bare_repo(served, "ops", {"a.txt": "0\n"})
    old = rev(bare, "main")
    tag_elsewhere(bare, tmp_path / "t", "keep", old)
    with git_daemon(served) as base:
        raw: dict[str, Any] = {"repo": f"{base}/ops.git", "tag": TAG}
        assert TagAction().run(ctx(tmp_path, raw)).ok
        new = outside_push(bare, tmp_path / "o", "b.txt", "1\n")
        with pytest.raises(TerminalError, match="force: true"):
            TagAction().run(ctx(tmp_path, raw))
        assert rev(bare, "v1.2.3-prod^{commit}") == old
        moved = TagAction().run(ctx(tmp_path, {**raw, "force": True}))
        assert moved.ok and "moved from" in moved.output
        assert rev(bare, "v1.2.3-prod^{commit}") == new
        again = TagAction().run(ctx(tmp_path, {**raw, "force": True}))
    assert again.summary == "unchanged"
    assert rev(bare, "keep^{commit}") == old and rev(bare, "main") == new  # nothing else moved


@pytest.mark.parametrize("same", [True, False])
def test_race_someone_pushes_the_same_tag_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, same: bool
) -> None:
    bare = bare_repo(tmp_path, "ops", {"a.txt": "0\n"})
    ours = rev(bare, "main")
    other = outside_push(bare, tmp_path / "o", "b.txt", "1\n")

    def they_tag_first(g: Git, refspec: str, *options: str) -> bool:
        tag_elsewhere(bare, tmp_path / "t", "v1.2.3-prod", ours if same else other)
        return push_once(g, refspec, *options)

    monkeypatch.setattr("conveyor.actions.git_tag.push_once", they_tag_first)
    raw = {"repo": f"file://{bare}", "tag": TAG, "ref": ours}
    if same:
        assert TagAction().run(ctx(tmp_path, raw)).summary == "unchanged"
    else:
        with pytest.raises(TerminalError, match="already points at"):
            TagAction().run(ctx(tmp_path, raw))
    assert git(bare, "tag", "-l", "--format=%(contents)", "v1.2.3-prod").strip() == "theirs"


def test_race_with_an_outside_branch_push_keeps_their_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = bare_repo(tmp_path, "ops", {"a.txt": "0\n"})
    ours = rev(bare, "main")
    theirs: list[str] = []

    def someone_pushes(g: Git, refspec: str, *options: str) -> bool:
        theirs.append(outside_push(bare, tmp_path / "o", "b.txt", "1\n"))
        return push_once(g, refspec, *options)

    monkeypatch.setattr("conveyor.actions.git_tag.push_once", someone_pushes)
    assert TagAction().run(ctx(tmp_path, {"repo": f"file://{bare}", "tag": TAG})).ok
    assert rev(bare, "v1.2.3-prod^{commit}") == ours  # the head we saw, not theirs
    assert rev(bare, "main") == theirs[0]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tag", "--upload-pack=touch x"),
        ("tag", "-f"),
        ("tag", "a..b"),
        ("tag", "v1 2"),
        ("tag", "x.lock"),
        ("tag", "a/.b"),  # passes the quick check; git check-ref-format refuses it
        ("ref", "--upload-pack=touch x"),
        ("ref", "main^{tree}"),
    ],
)
def test_bad_tag_or_ref_is_refused_and_runs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, field: str, value: str
) -> None:
    monkeypatch.chdir(tmp_path)
    bare = bare_repo(tmp_path, "ops", {"a.txt": "0\n"})
    raw = {"repo": f"file://{bare}", "tag": "ok", field: value}
    with pytest.raises(TerminalError, match=field):
        TagAction().run(ctx(tmp_path, raw))
    templated = {**raw, field: "${{ release.labels.evil }}"}
    with pytest.raises(TerminalError, match=field):
        TagAction().run(ctx(tmp_path, templated, evil=value))
    assert not list(tmp_path.rglob("x"))
    assert git(bare, "tag", "-l") == ""


def test_settings_accept_templates_at_apply_time() -> None:
    assert TagSettings(repo="file:///r", tag=TAG).force is False
    with pytest.raises(ValueError):
        TagSettings(repo="file:///r", tag="-${{ release.version }}")
