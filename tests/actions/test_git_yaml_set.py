"""`git.yaml-set` against real repositories (file:// and git daemon)."""

from __future__ import annotations

import subprocess
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from conveyor.actions import yamledit
from conveyor.actions.base import ActionContext, ActionResult
from conveyor.actions.git_yaml_set import YamlSetAction, YamlSetSettings
from conveyor.engine.service import Conveyor
from conveyor.errors import DefinitionError, TerminalError
from tests.actions.helpers import diff, first_call, one_task_policy, promote
from tests.conftest import BASE, DIGEST, apply_yaml
from tests.gitrepos import bare_repo, git, git_daemon, log, outside_push, show

FILE = "charts/web/values-prod.yaml"
VALUES = """\
# Values for production. Conveyor sets image.tag; people set the rest.
replicaCount: 3

image:
    repository: registry.local/web
    tag: "1.0.0"    # promoted
    pullPolicy: IfNotPresent

podAnnotations: {}

ingress:
    enabled: true
    hosts:
      - host: shop.example.com
        paths: [/]
"""
TEMPLATE: dict[str, Any] = {
    "release": {"product": "shop", "version": "1.2.3", "labels": {}},
    "artifacts": {"web": {"name": "web", "digest": DIGEST, "version": "1.2.3"}},
    "environment": {"name": "prod", "labels": {}, "settings": {"values": FILE}},
}


def ctx(tmp_path: Path, raw: dict[str, Any]) -> ActionContext:
    return ActionContext(
        raw=raw, template=TEMPLATE, workdir=tmp_path, timeout_s=60, data_dir=tmp_path / "data"
    )


def repo(tmp_path: Path, text: str = VALUES) -> Path:
    return bare_repo(tmp_path, "ops", {FILE: text, "README.md": "ops\n"})


def yaml_set(tmp_path: Path, bare: Path | str, values: dict[str, Any], **more: Any) -> ActionResult:
    url = bare if isinstance(bare, str) else f"file://{bare}"
    raw = {"repo": url, "file": FILE, "set": values, **more}
    return YamlSetAction().run(ctx(tmp_path, raw))


def test_sets_keys_touching_their_lines_only(tmp_path: Path) -> None:
    bare = repo(tmp_path)
    result = yaml_set(
        tmp_path,
        bare,
        {
            "image.tag": "${{ release.version }}",
            "replicaCount": 5,
            "ingress.hosts[0].host": "www.example.com",
            'podAnnotations."conveyor.dev/digest"': "${{ artifacts.web.digest }}",
        },
    )
    assert result.ok and "committed" in result.output, result
    after = show(bare, "main", FILE)
    assert diff(VALUES, after) == (
        [
            "replicaCount: 3",
            '    tag: "1.0.0"    # promoted',
            "podAnnotations: {}",
            "      - host: shop.example.com",
        ],
        [
            "replicaCount: 5",
            '    tag: "1.2.3"    # promoted',
            "podAnnotations:",  # `{}` filled is written out in full
            f"    conveyor.dev/digest: {DIGEST}",
            "      - host: www.example.com",
        ],
    )
    assert "Conveyor-Release: shop@1.2.3" in git(bare, "log", "-1", "--format=%B", "main")


def test_missing_mappings_are_created_in_the_files_indentation(tmp_path: Path) -> None:
    bare = repo(tmp_path)
    assert yaml_set(tmp_path, bare, {"resources.limits.memory": "256Mi"}).ok
    assert show(bare, "main", FILE) == VALUES + "resources:\n    limits:\n        memory: 256Mi\n"


def test_values_keep_their_type(tmp_path: Path) -> None:
    bare = repo(tmp_path, "a: x\nb: 1\n")
    assert yaml_set(tmp_path, bare, {"a": "1.10", "b": "2", "c": True, "d": [1, "2"]}).ok
    doc = yamledit.load(show(bare, "main", FILE))
    assert doc == {"a": "1.10", "b": "2", "c": True, "d": [1, "2"]}


def test_a_crlf_file_stays_crlf(tmp_path: Path) -> None:
    crlf = VALUES.replace("\n", "\r\n").encode()
    bare = repo(tmp_path)
    work = tmp_path / "ops-seed"  # the clone bare_repo seeded from
    (work / FILE).write_bytes(crlf)
    git(work, "commit", "-qam", "crlf")
    git(work, "push", "-q", "origin", "HEAD:main")
    assert yaml_set(tmp_path, bare, {"image.tag": "1.2.3"}).ok
    got = subprocess.run(["git", "show", f"main:{FILE}"], cwd=bare, capture_output=True).stdout
    assert got == crlf.replace(b'"1.0.0"', b'"1.2.3"')


def test_a_rerun_makes_no_commit(tmp_path: Path) -> None:
    bare = repo(tmp_path)
    assert yaml_set(tmp_path, bare, {"image.tag": "1.2.3", "replicaCount": 4}).ok
    commits = len(log(bare))
    again = yaml_set(tmp_path, bare, {"image.tag": "1.2.3", "replicaCount": 4})
    assert again.ok and again.summary == "unchanged", again
    assert len(log(bare)) == commits


def test_a_push_racing_on_another_file_is_rebased_onto(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = repo(tmp_path)
    other = "charts/web/values-qa.yaml"
    push = partial(outside_push, bare, tmp_path / "other", other, "image: {}\n")
    first_call(monkeypatch, yamledit, "set_path", push)
    result = yaml_set(tmp_path, bare, {"image.tag": "1.2.3"})
    assert result.ok and "rebase" in result.output, result
    assert '    tag: "1.2.3"    # promoted' in show(bare, "main", FILE)
    assert show(bare, "main", "charts/web/values-qa.yaml") == "image: {}\n"


def test_a_conflicting_push_fails_naming_the_file_and_keeps_theirs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = repo(tmp_path)
    theirs = VALUES.replace('"1.0.0"', '"1.1.0-hotfix"')
    push = partial(outside_push, bare, tmp_path / "other", FILE, theirs)
    first_call(monkeypatch, yamledit, "set_path", push)
    with pytest.raises(TerminalError, match=r"values-prod\.yaml"):
        yaml_set(tmp_path, bare, {"image.tag": "1.2.3"})
    assert show(bare, "main", FILE) == theirs


def test_git_daemon_remote(tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    bare = repo(served)
    with git_daemon(served) as base:
        result = yaml_set(tmp_path, f"{base}/ops.git", {"image.tag": "1.2.3"})
    assert result.ok, result
    assert '    tag: "1.2.3"    # promoted' in show(bare, "main", FILE)


def test_option_like_values_are_data_in_the_file_never_git_flags(tmp_path: Path) -> None:
    bare = repo(tmp_path)
    pwned = tmp_path / "pwned"
    flag = f"--upload-pack=touch {pwned}"
    assert yaml_set(tmp_path, bare, {"image.tag": "--upload-pack=x", "image.cmd": flag}).ok
    image = yamledit.load(show(bare, "main", FILE))["image"]
    assert image["tag"] == "--upload-pack=x" and image["cmd"] == flag
    assert not pwned.exists()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"file": "../escape.yaml"}, "inside the repository"),
        ({"file": "/etc/passwd"}, "inside the repository"),
        ({"file": "--upload-pack=x"}, "inside the repository"),
        ({"set": {}}, "at least 1 item"),
        ({"set": {"a..b": 1}}, "bad path 'a..b' at character 2"),
        ({"values": {"a": 1}}, "Extra inputs are not permitted"),
    ],
)
def test_bad_settings_are_refused(settings: dict[str, Any], message: str) -> None:
    raw = {"repo": "file:///r", "file": FILE, "set": {"image.tag": "1"}, **settings}
    with pytest.raises(ValueError, match=message):
        YamlSetSettings.model_validate(raw)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"file": "charts/web/missing.yaml"}, "charts/web/missing.yaml does not exist"),
        ({"file": "${{ release.version }}/../../x.yaml"}, "inside the repository"),
        ({"set": {"image.tag.major": 1}}, r"values-prod\.yaml: cannot set image\.tag\.major"),
        ({"set": {"ingress.hosts[3].host": "x"}}, r"'ingress\.hosts' has 1 item"),
        ({"set": {"image": "web:1"}}, "'image' is a mapping"),
        ({"set": {"image.tag": "${{ artifacts.web.nope }}"}}, "unknown name"),
    ],
)
def test_bad_values_known_at_run_time_are_terminal(
    tmp_path: Path, settings: dict[str, Any], message: str
) -> None:
    bare = repo(tmp_path)
    values = settings.pop("set", {"image.tag": "1"})
    with pytest.raises(TerminalError, match=message):
        yaml_set(tmp_path, bare, values, **settings)
    assert len(log(bare)) == 1


def test_a_file_that_is_not_one_mapping_is_refused(tmp_path: Path) -> None:
    bare = repo(tmp_path, "- a\n- b\n")
    with pytest.raises(TerminalError, match="not a mapping"):
        yaml_set(tmp_path, bare, {"a": 1})


# --- through a Conveyor ---------------------------------------------------------------------


def policy(**with_: Any) -> str:
    return one_task_policy("values", "values", "git.yaml-set", with_)


@pytest.mark.parametrize(
    ("with_", "field", "message"),
    [
        ({"file": "../x.yaml", "set": {"a": 1}}, "file", "inside the repository"),
        ({"file": "v.yaml", "set": {"a[": 1}}, "set", "bad path"),
        ({"file": "v.yaml", "set": {}}, "set", "at least 1 item"),
        ({"file": "v.yaml", "set": {"a": "${{ release.nope }}"}}, "set", "unknown name"),
    ],
)
def test_bad_definitions_are_refused_at_apply(
    cv: Conveyor, with_: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(DefinitionError, match=message) as info:
        apply_yaml(cv, BASE + policy(repo="file:///r", **with_))
    assert any(field in p.field for p in info.value.problems), info.value.problems


def test_a_promotion_sets_the_values_of_the_release(cv: Conveyor, tmp_path: Path) -> None:
    bare = repo(tmp_path)
    with_ = {"repo": f"file://{bare}", "file": FILE, "set": {"image.tag": "${{ release.version }}"}}
    promote(cv, policy(**with_), "2.0.0")
    assert diff(VALUES, show(bare, "main", FILE)) == (
        ['    tag: "1.0.0"    # promoted'],
        ['    tag: "2.0.0"    # promoted'],
    )
