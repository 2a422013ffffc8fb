"""`git.kustomize-set-image` against real repositories (file:// and git daemon)."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from conveyor.actions import git_kustomize, yamledit
from conveyor.actions.base import ActionContext, ActionResult
from conveyor.actions.git_kustomize import KustomizeSetImageAction, KustomizeSetImageSettings
from conveyor.engine.service import Conveyor
from conveyor.errors import DefinitionError, TerminalError
from tests.actions.helpers import diff, first_call, one_task_policy, promote
from tests.conftest import BASE, DIGEST, apply_yaml
from tests.gitrepos import bare_repo, git, git_daemon, log, outside_push, show

OVERLAY = "apps/web/overlays/prod"
FILE = f"{OVERLAY}/kustomization.yaml"
KUSTOMIZATION = """\
# Production overlay: Conveyor edits it, people review it.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization

resources:
  - ../../base   # the shared manifests
images:
  - name: web
    newName: registry.local/web
    newTag: "1.0.0"  # promoted
  - name: worker
    newTag: v7

# pods per deployment
replicas:
  - name: web
    count: 3
"""
TEMPLATE: dict[str, Any] = {
    "release": {"product": "shop", "version": "1.2.3", "labels": {}},
    "artifacts": {
        "web": {
            "name": "web",
            "type": "image",
            "repository": "registry.local/web",
            "digest": DIGEST,
            "version": "1.2.3",
        }
    },
    "environment": {
        "name": "prod",
        "labels": {},
        "settings": {"overlay": OVERLAY},
        "type": "production",
    },
}


def ctx(tmp_path: Path, raw: dict[str, Any]) -> ActionContext:
    return ActionContext(
        raw=raw,
        template=TEMPLATE,
        workdir=tmp_path,
        timeout_s=60,
        data_dir=tmp_path / "data",
        promotion_id=3,
    )


def repo(tmp_path: Path, text: str = KUSTOMIZATION) -> Path:
    return bare_repo(tmp_path, "ops", {FILE: text, "README.md": "ops\n"})


def set_image(tmp_path: Path, bare: Path | str, **settings: Any) -> ActionResult:
    url = bare if isinstance(bare, str) else f"file://{bare}"
    raw = {"repo": url, "path": OVERLAY, "image": "web", **settings}
    return KustomizeSetImageAction().run(ctx(tmp_path, raw))


# --- what the file ends up saying -------------------------------------------------------


def test_new_tag_changes_that_line_only_and_commits_with_trailers(tmp_path: Path) -> None:
    bare = repo(tmp_path)
    result = set_image(tmp_path, bare, newName="*", newTag="1.2.3")
    assert result.ok and "committed" in result.output, result
    after = show(bare, "main", FILE)
    assert diff(KUSTOMIZATION, after) == (
        ['    newTag: "1.0.0"  # promoted'],
        ['    newTag: "1.2.3"  # promoted'],
    )
    body = git(bare, "log", "-1", "--format=%B", "main")
    assert body.startswith("Promote shop 1.2.3 to prod")
    assert "Conveyor-Promotion: 3" in body


def test_a_digest_replaces_the_tag_as_kustomize_does(tmp_path: Path) -> None:
    bare = repo(tmp_path)
    assert set_image(tmp_path, bare, newName="*", digest=DIGEST).ok
    after = show(bare, "main", FILE)
    assert diff(KUSTOMIZATION, after) == (
        ['    newTag: "1.0.0"  # promoted'],
        [f"    digest: {DIGEST}"],
    )
    assert set_image(tmp_path, bare, newName="*", newTag="1.2.4").ok  # and back
    assert diff(after, show(bare, "main", FILE)) == (
        [f"    digest: {DIGEST}"],
        ["    newTag: 1.2.4"],
    )


def test_fields_not_given_are_kept_and_a_digest_replaces_the_tag(tmp_path: Path) -> None:
    # Unlike `kustomize edit set image web@sha256:...`, the overlay's newName survives.
    bare = repo(tmp_path)
    assert set_image(tmp_path, bare, digest=DIGEST).ok
    removed, added = diff(KUSTOMIZATION, show(bare, "main", FILE))
    assert removed == ['    newTag: "1.0.0"  # promoted']
    assert added == [f"    digest: {DIGEST}"]
    assert set_image(tmp_path, bare, newTag="2").ok
    web = next(
        e for e in YAML(typ="safe").load(show(bare, "main", FILE))["images"] if e["name"] == "web"
    )
    assert web == {"name": "web", "newName": "registry.local/web", "newTag": "2"}
    assert set_image(tmp_path, bare, newName="mirror.local/web", newTag="2", digest=DIGEST).ok
    web = next(
        e for e in YAML(typ="safe").load(show(bare, "main", FILE))["images"] if e["name"] == "web"
    )
    assert web == {"name": "web", "newName": "mirror.local/web", "newTag": "2", "digest": DIGEST}


def test_a_missing_entry_is_added_last_above_the_comments_that_follow(tmp_path: Path) -> None:
    bare = repo(tmp_path)
    assert set_image(tmp_path, bare, image="cache", newName="redis", newTag="7.2").ok
    assert diff(KUSTOMIZATION, show(bare, "main", FILE)) == (
        [],
        ["  - name: cache", "    newName: redis", "    newTag: '7.2'"],
    )
    assert show(bare, "main", FILE).index("newTag: '7.2'") < show(bare, "main", FILE).index(
        "# pods per deployment"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("resources:\n- base\n", "resources:\n- base\nimages:\n- name: web\n  newTag: v2\n"),
        ("images: []\n", "images:\n- name: web\n  newTag: v2\n"),
        ("images:\n", "images:\n- name: web\n  newTag: v2\n"),
        (
            "images:\n- {name: db, newTag: x}\n",
            "images:\n- {name: db, newTag: x}\n- {name: web, newTag: v2}\n",
        ),
    ],
)
def test_images_is_added_when_missing(tmp_path: Path, text: str, expected: str) -> None:
    bare = repo(tmp_path, text)
    assert set_image(tmp_path, bare, newTag="v2").ok
    assert show(bare, "main", FILE) == expected


MIXED = """\
resources:
- ../../base
- service.yaml
images:
    - name: web   # hand-indented below a kustomize-written list
      newTag: "1.0"
    - name: db
      newTag: "2"
patches:
- path: patch.yaml
"""


@pytest.mark.parametrize(
    ("image", "wanted", "removed", "added"),
    [
        ("web", {"newTag": "1.1"}, ['      newTag: "1.0"'], ['      newTag: "1.1"']),
        (
            "db",
            {"newName": "*", "digest": DIGEST},
            ['      newTag: "2"'],
            [f"      digest: {DIGEST}"],
        ),
        ("cache", {"newTag": "7"}, [], ["    - name: cache", "      newTag: '7'"]),
    ],
)
def test_lists_indented_unlike_the_rest_of_the_file_keep_their_indentation(
    image: str, wanted: dict[str, str], removed: list[str], added: list[str]
) -> None:
    doc = yamledit.load(MIXED)
    assert git_kustomize.set_image(doc, image, {f: wanted.get(f) for f in git_kustomize.FIELDS})
    assert diff(MIXED, yamledit.dump(doc)) == (removed, added)


def test_a_kustomization_yml_or_Kustomization_is_found_too(tmp_path: Path) -> None:
    bare = bare_repo(tmp_path, "ops", {f"{OVERLAY}/Kustomization": "images: []\n"})
    assert set_image(tmp_path, bare, newTag="v2").ok
    assert "newTag: v2" in show(bare, "main", f"{OVERLAY}/Kustomization")


def test_templates_in_every_field(tmp_path: Path) -> None:
    bare = repo(tmp_path)
    result = set_image(
        tmp_path,
        bare,
        path="${{ environment.settings.overlay }}",
        image="${{ artifacts.web.name }}",
        newName="${{ artifacts.web.repository }}",
        digest="${{ artifacts.web.digest }}",
        message="web ${{ release.version }} to ${{ environment.name }}",
    )
    assert result.ok, result
    assert f"    digest: {DIGEST}" in show(bare, "main", FILE)
    assert log(bare)[0] == "web 1.2.3 to prod"


# --- idempotency, races, conflicts --------------------------------------------------------


def test_a_rerun_makes_no_commit_and_does_not_rewrite_the_file(tmp_path: Path) -> None:
    bare = repo(tmp_path)
    assert set_image(tmp_path, bare, newName="*", newTag="1.2.3").ok
    commits = len(log(bare))
    again = set_image(tmp_path, bare, newName="*", newTag="1.2.3")
    assert again.ok and again.summary == "unchanged", again
    assert len(log(bare)) == commits


def test_a_file_already_saying_it_makes_no_commit_whatever_its_layout(tmp_path: Path) -> None:
    # Indented and spaced in ways ruamel would not write: still no commit.
    text = "images:\n    -   name: web\n        newTag:    v2   # ok\nnothing: ~\n"
    bare = repo(tmp_path, text)
    result = set_image(tmp_path, bare, newTag="v2")
    assert result.ok and result.summary == "unchanged"
    assert len(log(bare)) == 1


def test_a_push_racing_on_another_file_is_rebased_onto(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = repo(tmp_path)
    other = "apps/web/overlays/qa/notes.txt"
    push = partial(outside_push, bare, tmp_path / "other", other, "qa\n")
    first_call(monkeypatch, git_kustomize, "set_image", push)
    result = set_image(tmp_path, bare, newName="*", newTag="1.2.3")
    assert result.ok and "rebase" in result.output, result
    assert '    newTag: "1.2.3"  # promoted' in show(bare, "main", FILE)
    assert show(bare, "main", "apps/web/overlays/qa/notes.txt") == "qa\n"


def test_a_conflicting_push_fails_naming_the_file_and_keeps_theirs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = repo(tmp_path)
    theirs = KUSTOMIZATION.replace('"1.0.0"', '"1.1.0-hotfix"')
    push = partial(outside_push, bare, tmp_path / "other", FILE, theirs)
    first_call(monkeypatch, git_kustomize, "set_image", push)
    with pytest.raises(TerminalError, match=r"kustomization\.yaml"):
        set_image(tmp_path, bare, newName="*", newTag="1.2.3")
    assert show(bare, "main", FILE) == theirs


def test_git_daemon_remote(tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    bare = repo(served)
    with git_daemon(served) as base:
        result = set_image(tmp_path, f"{base}/ops.git", newName="*", newTag="1.2.3")
    assert result.ok, result
    assert '    newTag: "1.2.3"  # promoted' in show(bare, "main", FILE)


# --- bad input ------------------------------------------------------------------------------


def test_option_like_values_are_data_in_the_file_never_git_flags(tmp_path: Path) -> None:
    bare = repo(tmp_path)
    pwned = tmp_path / "pwned"
    flag = f"--upload-pack=touch {pwned}"
    result = set_image(tmp_path, bare, newName=flag, newTag="--upload-pack=x")
    assert result.ok, result
    entry = yamledit.load(show(bare, "main", FILE))["images"][0]
    assert entry == {"name": "web", "newName": flag, "newTag": "--upload-pack=x"}
    assert not pwned.exists()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"path": "../escape"}, "inside the repository"),
        ({"path": "/etc"}, "inside the repository"),
        ({"path": "--upload-pack=x"}, "inside the repository"),
        ({"digest": "not-a-digest"}, "is not a digest"),
        ({"newTag": None}, "at least one of newName, newTag, digest"),
        ({"newTag": ""}, "at least 1 character"),
        ({"tag": "v1"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_settings_are_refused(settings: dict[str, Any], message: str) -> None:
    raw = {"repo": "file:///r", "path": OVERLAY, "image": "web", "newTag": "v1", **settings}
    with pytest.raises(ValueError, match=message):
        KustomizeSetImageSettings.model_validate({k: v for k, v in raw.items() if v is not None})


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"path": "${{ release.version }}/../../.."}, "inside the repository"),
        ({"path": "apps/none"}, "no kustomization file in 'apps/none'"),
        ({"digest": "${{ release.version }}"}, "is not a digest"),
        ({"image": "${{ artifacts.nope.name }}"}, "unknown name"),
    ],
)
def test_bad_values_known_at_run_time_are_terminal(
    tmp_path: Path, settings: dict[str, Any], message: str
) -> None:
    bare = repo(tmp_path)
    with pytest.raises(TerminalError, match=message):
        set_image(tmp_path, bare, **{"newTag": "v1", **settings})
    assert len(log(bare)) == 1


def test_two_entries_for_one_image_are_refused(tmp_path: Path) -> None:
    bare = repo(tmp_path, "images:\n- name: web\n  newTag: a\n- name: web\n  newTag: b\n")
    with pytest.raises(TerminalError, match="2 entries named 'web'"):
        set_image(tmp_path, bare, newTag="c")


def test_a_file_that_is_not_a_kustomization_is_refused(tmp_path: Path) -> None:
    bare = repo(tmp_path, "images: {web: x}\n")
    with pytest.raises(TerminalError, match="'images' is not a list"):
        set_image(tmp_path, bare, newTag="c")


# --- through a Conveyor ---------------------------------------------------------------------


def policy(**with_: Any) -> str:
    return one_task_policy("overlays", "overlay", "git.kustomize-set-image", with_)


@pytest.mark.parametrize(
    ("with_", "field", "message"),
    [
        ({"path": "../x", "newTag": "v1"}, "path", "inside the repository"),
        ({"path": "o", "newTag": "v1", "digest": "nope"}, "digest", "is not a digest"),
        ({"path": "o"}, "with", "at least one of newName, newTag, digest"),
        ({"path": "o", "newTag": "${{ release.nope }}"}, "newTag", "unknown name"),
    ],
)
def test_bad_definitions_are_refused_at_apply(
    cv: Conveyor, with_: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(DefinitionError, match=message) as info:
        apply_yaml(cv, BASE + policy(repo="file:///r", image="web", **with_))
    assert any(field in p.field for p in info.value.problems), info.value.problems


def test_a_promotion_sets_the_digest_of_the_release(cv: Conveyor, tmp_path: Path) -> None:
    bare = bare_repo(tmp_path, "ops", {"overlays/dev/kustomization.yaml": KUSTOMIZATION})
    task = policy(
        repo=f"file://{bare}",
        path="overlays/${{ environment.name }}",
        image="web",
        newName="*",
        digest="${{ artifacts.web.digest }}",
    )
    promote(cv, task, "1.0.0")
    text = show(bare, "main", "overlays/dev/kustomization.yaml")
    assert diff(KUSTOMIZATION, text) == (
        ['    newTag: "1.0.0"  # promoted'],
        [f"    digest: {DIGEST}"],
    )
    assert "Conveyor-Release: shop@1.0.0" in git(bare, "log", "-1", "--format=%B", "main")
