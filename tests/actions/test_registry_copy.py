"""The `registry.copy` action through the engine, against real loopback registries: a
release's image is promoted by digest from the fast-feedback stage to extended-test (same
registry: mounted, no bytes moved) and to prod (another registry: copied)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from conveyor.engine.service import Conveyor
from conveyor.engine.view import ReleaseView, TaskView
from conveyor.store.tables import AuditRow, TaskRunRow
from tests.conftest import apply_yaml
from tests.registries import inspect_digest, make_image, registry

# Retries in these tests need not wait out the real backoff.
pytestmark = pytest.mark.usefixtures("quick_retries")

DESTINATION = "${{ environment.settings.image }}:${{ release.version }}"
USER = "promoter"
PASSWORD = "pr0d-Sup3r-s3cret-pw"
WRONG = "wr0ng-Guess-pw-xyz"


@pytest.fixture
def locked_prod(tmp_path: Path) -> Iterator[str]:
    with registry(tmp_path / "registry-locked", htpasswd=(USER, PASSWORD)) as host:
        yield host


def doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "conveyor.dev/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def setup(
    cv: Conveyor,
    dev: str,
    prod: str,
    task: dict[str, Any] | None = None,
    retries: int | None = None,
) -> None:
    """Product p2p-web (image in DEV/fast-feedback/web), fast-feedback -> extended-test (same
    registry) -> prod (PROD), and a policy copying the image with `task` as its `with`."""
    with_ = task if task is not None else {"artifact": "web"}
    with_ = {"destination": DESTINATION, "insecure": True, **with_}
    copy: dict[str, Any] = {"name": "copy", "uses": "registry.copy", "with": with_}
    if retries is not None:
        copy["retries"] = retries
    docs = [
        doc(
            "Product",
            "p2p-web",
            {
                "artifacts": [
                    {"name": "web", "type": "image", "repository": f"{dev}/fast-feedback/web"}
                ]
            },
        ),
        doc("Environment", "fast-feedback", {"settings": {"image": f"{dev}/fast-feedback/web"}}),
        doc("Environment", "extended-test", {"settings": {"image": f"{dev}/extended-test/web"}}),
        doc(
            "Environment", "prod", {"type": "production", "settings": {"image": f"{prod}/prod/web"}}
        ),
        doc(
            "PromotionFlow",
            "p2p",
            {
                "version": "1.00",
                "product": "p2p-web",
                "triggerEnvironment": "fast-feedback",
                "environments": [
                    {"name": "extended-test", "dependsOn": ["fast-feedback"]},
                    {"name": "prod", "dependsOn": ["extended-test"]},
                ],
            },
        ),
        doc(
            "PromotionPolicy",
            "promote-by-copy",
            {
                "selector": {"environments": {"names": ["extended-test", "prod"]}},
                "workflow": {"steps": [{"name": "promote", "tasks": [copy]}]},
            },
        ),
    ]
    apply_yaml(cv, "".join(f"---\n{json.dumps(d)}\n" for d in docs))


def release(cv: Conveyor, dev: str, version: str, digest: str) -> ReleaseView:
    ref = f"p2p-web@{version}"
    cv.create_release("p2p-web", version, {"web": f"{dev}/fast-feedback/web@{digest}"})
    cv.trigger("p2p", ref)
    outcome = cv.engine.run_until_idle(max_passes=300)
    assert outcome.inflight == 0 and outcome.next_at is None, outcome
    return cv.show(ref)


def copy_task(view: ReleaseView, env: str) -> TaskView:
    node = next(n for n in view.nodes if n.environment == env)
    (task,) = [t for t in node.tasks if t.action == "registry.copy"]
    return task


def state(view: ReleaseView, env: str) -> str:
    return next(n.state for n in view.nodes if n.environment == env)


def bytes_moved(output: str) -> int:
    match = re.search(r"(\d+) bytes moved", output)
    assert match, output
    return int(match.group(1))


def build(host: str, tmp_path: Path, seed: int = 0, tag: str = "1.0.0", **kw: Any) -> str:
    return make_image(host, "fast-feedback/web", tag, workdir=tmp_path / "w", seed=seed, **kw)


def test_promotes_by_digest_mounting_then_copying(
    cv: Conveyor, tmp_path: Path, dev: str, prod: str
) -> None:
    digest = build(dev, tmp_path)
    setup(cv, dev, prod)
    view = release(cv, dev, "1.0.0", digest)
    assert view.status == "succeeded", view
    assert inspect_digest(dev, "extended-test/web", "1.0.0") == digest
    assert inspect_digest(prod, "prod/web", "1.0.0") == digest

    same = copy_task(view, "extended-test")
    assert same.status == "succeeded" and same.attempt == 1
    assert digest in same.output and f"{dev}/extended-test/web:1.0.0" in same.output
    assert "0 bytes moved" in same.output and "0 blobs copied" in same.output
    assert "3 mounted" in same.output  # config and two layers: mounted from fast-feedback

    other = copy_task(view, "prod")
    assert other.status == "succeeded"
    assert bytes_moved(other.output) > 64 * 1024  # two layers of 64 KiB random bytes
    assert "3 blobs copied" in other.output and "0 mounted" in other.output

    # a second release of the same image: everything is already in both places
    again = release(cv, dev, "1.0.1", digest)
    assert again.status == "succeeded", again
    for env in ("extended-test", "prod"):
        out = copy_task(again, env).output
        assert "0 bytes moved" in out and "0 blobs copied" in out and "already there" in out
    assert inspect_digest(dev, "extended-test/web", "1.0.1") == digest
    assert inspect_digest(prod, "prod/web", "1.0.1") == digest


def test_an_unpinned_source_fails(cv: Conveyor, tmp_path: Path, dev: str, prod: str) -> None:
    digest = build(dev, tmp_path)
    setup(cv, dev, prod, task={"source": f"{dev}/fast-feedback/web:1.0.0"})
    view = release(cv, dev, "1.0.0", digest)
    assert view.status == "failed"
    task = copy_task(view, "extended-test")
    assert task.status == "failed" and "not pinned" in task.error
    assert state(view, "prod") != "succeeded"


def test_a_pinned_source_is_copied(cv: Conveyor, tmp_path: Path, dev: str, prod: str) -> None:
    digest = build(dev, tmp_path)
    setup(cv, dev, prod, task={"source": f"{dev}/fast-feedback/web@{digest}"})
    view = release(cv, dev, "1.0.0", digest)
    assert view.status == "succeeded", view
    assert inspect_digest(prod, "prod/web", "1.0.0") == digest


@pytest.mark.parametrize("force", [False, True])
def test_a_tag_pointing_elsewhere_is_a_conflict_unless_forced(
    cv: Conveyor, tmp_path: Path, dev: str, prod: str, force: bool
) -> None:
    digest = build(dev, tmp_path)
    squatter = make_image(prod, "prod/web", "1.0.0", workdir=tmp_path / "w", seed=7)
    assert squatter != digest
    setup(cv, dev, prod, task={"artifact": "web", "force": force})
    view = release(cv, dev, "1.0.0", digest)
    assert copy_task(view, "extended-test").status == "succeeded"
    task = copy_task(view, "prod")
    if force:
        assert view.status == "succeeded", view
        assert inspect_digest(prod, "prod/web", "1.0.0") == digest
    else:
        assert view.status == "failed" and state(view, "prod") == "failed"
        assert task.status == "failed" and task.attempt == 1
        assert squatter in task.error and digest in task.error
        assert inspect_digest(prod, "prod/web", "1.0.0") == squatter


def secrets_in(cv: Conveyor, view: ReleaseView, *secrets: str) -> list[str]:
    """Every place a secret shows up: the view, task runs, the audit trail."""
    texts = [t.output + t.error for n in view.nodes for t in n.tasks]
    texts += [view.message, repr(view)]
    with cv.store.session() as s:
        texts += [
            json.dumps([a.action, a.subject, a.before, a.after], default=str)
            for a in s.scalars(select(AuditRow))
        ]
        texts += [r.output + (r.error or "") for r in s.scalars(select(TaskRunRow))]
    return [t for t in texts for secret in secrets if secret in t]


def test_destination_credentials_from_an_environment_variable(
    cv: Conveyor,
    tmp_path: Path,
    dev: str,
    locked_prod: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    digest = build(dev, tmp_path)
    monkeypatch.setenv("DEST_CREDS", f"{USER}:{PASSWORD}")
    setup(cv, dev, locked_prod, task={"artifact": "web", "destAuthEnv": "DEST_CREDS"})
    view = release(cv, dev, "1.0.0", digest)
    assert view.status == "succeeded", view
    assert inspect_digest(locked_prod, "prod/web", "1.0.0", auth=(USER, PASSWORD)) == digest
    assert bytes_moved(copy_task(view, "prod").output) > 0
    assert secrets_in(cv, view, PASSWORD) == []


def test_a_wrong_password_fails_once_without_retries_or_leaks(
    cv: Conveyor,
    tmp_path: Path,
    dev: str,
    locked_prod: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    digest = build(dev, tmp_path)
    monkeypatch.setenv("DEST_CREDS", f"{USER}:{WRONG}")
    setup(cv, dev, locked_prod, task={"artifact": "web", "destAuthEnv": "DEST_CREDS"}, retries=2)
    view = release(cv, dev, "1.0.0", digest)
    assert view.status == "failed"
    task = copy_task(view, "prod")
    assert task.status == "failed" and task.attempt == 1  # refused is terminal: no retry
    assert task.error
    assert secrets_in(cv, view, WRONG, PASSWORD) == []


def test_an_unset_auth_variable_fails_naming_it(
    cv: Conveyor, tmp_path: Path, dev: str, prod: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    digest = build(dev, tmp_path)
    monkeypatch.delenv("NO_SUCH_CREDS", raising=False)
    setup(cv, dev, prod, task={"artifact": "web", "destAuthEnv": "NO_SUCH_CREDS"}, retries=2)
    view = release(cv, dev, "1.0.0", digest)
    task = copy_task(view, "extended-test")
    assert task.status == "failed" and task.attempt == 1
    assert "NO_SUCH_CREDS" in task.error


def test_source_credentials_from_an_environment_variable(
    cv: Conveyor, tmp_path: Path, prod: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with registry(tmp_path / "locked-dev", htpasswd=(USER, PASSWORD)) as dev:
        digest = build(dev, tmp_path, auth=(USER, PASSWORD))
        monkeypatch.setenv("REGISTRY_CREDS", f"{USER}:{PASSWORD}")
        task = {
            "artifact": "web",
            "sourceAuthEnv": "REGISTRY_CREDS",
            "destAuthEnv": "REGISTRY_CREDS",
        }
        setup(cv, dev, prod, task=task)
        view = release(cv, dev, "1.0.0", digest)
        assert view.status == "succeeded", view
        assert "0 bytes moved" in copy_task(view, "extended-test").output
        assert inspect_digest(dev, "extended-test/web", "1.0.0", auth=(USER, PASSWORD)) == digest
    assert inspect_digest(prod, "prod/web", "1.0.0") == digest
    assert secrets_in(cv, view, PASSWORD) == []
