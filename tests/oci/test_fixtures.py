"""The registry fixtures themselves: a real docker-registry, images pushed with skopeo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.registries import (
    OCI_INDEX,
    OCI_MANIFEST,
    SkopeoError,
    blobs_on_disk,
    inspect_digest,
    inspect_raw,
    make_image,
    registry,
)

CREDS = ("alice", "s3cret")
ACCEPT = {"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"}


def get(url: str, **kwargs: Any) -> httpx.Response:
    """Straight to loopback, whatever proxy the environment names."""
    return httpx.get(url, trust_env=False, **kwargs)


def test_registry_without_auth_answers_anonymously(tmp_path: Path) -> None:
    with registry(tmp_path / "reg") as host:
        assert host.startswith("127.0.0.1:")
        assert get(f"http://{host}/v2/").status_code == 200
    with pytest.raises(httpx.TransportError):
        get(f"http://{host}/v2/", timeout=1.0)


def test_registry_with_auth_refuses_anonymous(tmp_path: Path) -> None:
    with registry(tmp_path / "reg", htpasswd=CREDS) as host:
        assert get(f"http://{host}/v2/").status_code == 401
        assert get(f"http://{host}/v2/", auth=CREDS).status_code == 200
        assert get(f"http://{host}/v2/", auth=("alice", "nope")).status_code == 401


def test_two_registries_are_separate(tmp_path: Path) -> None:
    with registry(tmp_path / "a") as a, registry(tmp_path / "b") as b:
        assert a != b
        make_image(a, "app", "v1", layers=1, layer_size=1024, workdir=tmp_path / "w")
        assert blobs_on_disk(tmp_path / "a")
        assert blobs_on_disk(tmp_path / "b") == set()


def test_single_image_is_pushed(tmp_path: Path) -> None:
    root = tmp_path / "reg"
    with registry(root) as host:
        digest = make_image(host, "team/app", "v1", layers=3, layer_size=4096, workdir=tmp_path)
        assert digest.startswith("sha256:")
        assert inspect_digest(host, "team/app", "v1") == digest

        manifest = json.loads(inspect_raw(host, "team/app", "v1"))
        assert manifest["mediaType"] == OCI_MANIFEST
        assert len(manifest["layers"]) == 3
        wanted = {manifest["config"]["digest"], *(layer["digest"] for layer in manifest["layers"])}
        assert wanted <= blobs_on_disk(root)
        assert digest in blobs_on_disk(root)  # the manifest is stored as a blob too

        r = get(f"http://{host}/v2/team/app/manifests/v1", headers=ACCEPT)
        assert r.status_code == 200
        assert r.headers["Docker-Content-Digest"] == digest


def test_images_are_deterministic_by_seed(tmp_path: Path) -> None:
    with registry(tmp_path / "reg") as host:
        first = make_image(host, "app", "a", layer_size=1024, workdir=tmp_path, seed=7)
        again = make_image(host, "other", "b", layer_size=1024, workdir=tmp_path, seed=7)
        other = make_image(host, "app", "c", layer_size=1024, workdir=tmp_path, seed=8)
    assert first == again
    assert first != other


def test_index_is_pushed_with_all_platforms(tmp_path: Path) -> None:
    root = tmp_path / "reg"
    with registry(root) as host:
        digest = make_image(
            host,
            "app",
            "multi",
            layers=1,
            layer_size=2048,
            platforms=["linux/amd64", "linux/arm64"],
            workdir=tmp_path,
        )
        assert inspect_digest(host, "app", "multi") == digest
        index = json.loads(inspect_raw(host, "app", "multi"))
        assert index["mediaType"] == OCI_INDEX
        platforms = [m["platform"]["architecture"] for m in index["manifests"]]
        assert platforms == ["amd64", "arm64"]
        stored = blobs_on_disk(root)
        assert digest in stored
        for entry in index["manifests"]:
            assert entry["mediaType"] == OCI_MANIFEST
            assert entry["digest"] in stored
            r = get(f"http://{host}/v2/app/manifests/{entry['digest']}", headers=ACCEPT)
            assert r.status_code == 200
            layer = json.loads(r.content)["layers"][0]["digest"]
            assert layer in stored


def test_auth_push_and_wrong_credentials(tmp_path: Path) -> None:
    with registry(tmp_path / "reg", htpasswd=CREDS) as host:
        digest = make_image(
            host, "app", "v1", layers=1, layer_size=1024, auth=CREDS, workdir=tmp_path
        )
        assert inspect_digest(host, "app", "v1", auth=CREDS) == digest
        with pytest.raises(SkopeoError, match=r"(?i)unauthorized|authentication"):
            make_image(
                host, "app", "v2", layers=1, auth=("alice", "wrong"), workdir=tmp_path, seed=1
            )
        with pytest.raises(SkopeoError):
            make_image(host, "app", "v3", layers=1, workdir=tmp_path, seed=2)
        with pytest.raises(SkopeoError):
            inspect_digest(host, "app", "v1", auth=("alice", "wrong"))
        with pytest.raises(SkopeoError):
            inspect_digest(host, "app", "v1")
