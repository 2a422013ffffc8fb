"""copy_image against real registries (Debian's docker-registry on loopback, images pushed
with skopeo), and against a registry behind a proxy that fails or corrupts on purpose."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest

from conveyor.errors import Conflict, NotFound, TransientError
from conveyor.oci.auth import Credentials
from conveyor.oci.copy import CopyReport, copy_image
from conveyor.oci.errors import (
    AuthRefused,
    CopyCancelled,
    ImageNotFound,
    RegistryProtocolError,
    TagConflict,
    TransferFailed,
)
from conveyor.oci.reference import parse
from tests.oci.proxy import Answer, Proxy, TokenGate, fail
from tests.registries import blobs_on_disk, inspect_digest, inspect_raw, make_image, registry

# Retries in these tests need not wait out the real backoff.
pytestmark = pytest.mark.usefixtures("quick_retries")

CREDS = ("alice", "s3cret-pass")
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


@pytest.fixture
def src(tmp_path: Path) -> Iterator[str]:
    with registry(tmp_path / "src") as host:
        yield host


@pytest.fixture
def dst(tmp_path: Path) -> Iterator[str]:
    with registry(tmp_path / "dst") as host:
        yield host


def blob_sizes(host: str, repository: str, tag: str) -> dict[str, int]:
    """Config and layers of a single-image manifest: digest -> size."""
    doc = json.loads(inspect_raw(host, repository, tag))
    return {d["digest"]: d["size"] for d in [doc["config"], *doc["layers"]]}


def manifest_status(host: str, repository: str, ref: str) -> int:
    accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"
    url = f"http://{host}/v2/{repository}/manifests/{ref}"
    return httpx.head(url, headers={"Accept": accept}, trust_env=False).status_code


def test_cross_registry_copy(tmp_path: Path, src: str, dst: str) -> None:
    digest = make_image(src, "team/web", "v1", layers=3, workdir=tmp_path / "w")
    seen: list[tuple[str, int, int]] = []
    report = copy_image(
        parse(f"{src}/team/web:v1"),
        parse(f"{dst}/prod/web:v1"),
        insecure=True,
        progress=lambda what, done, total: seen.append((what, done, total)),
    )
    blobs = blob_sizes(src, "team/web", "v1")
    assert report == CopyReport(digest, sum(blobs.values()), len(blobs), 0, 0, 1)
    assert inspect_digest(dst, "prod/web", "v1") == digest
    assert {*blobs, digest} <= blobs_on_disk(tmp_path / "dst")
    last = {what: (done, total) for what, done, total in seen}
    assert last == {d: (size, size) for d, size in blobs.items()}
    # without a destination tag: written by digest only
    untagged = copy_image(parse(f"{src}/team/web:v1"), parse(f"{dst}/untagged"), insecure=True)
    assert untagged == CopyReport(digest, sum(blobs.values()), len(blobs), 0, 0, 1)
    assert manifest_status(dst, "untagged", digest) == 200


def test_same_registry_mounts_blobs(tmp_path: Path, src: str) -> None:
    digest = make_image(src, "team/web", "v1", workdir=tmp_path / "w")
    report = copy_image(
        parse(f"{src}/team/web@{digest}"), parse(f"{src}/prod/web:v1"), insecure=True
    )
    assert report == CopyReport(digest, 0, 0, 3, 0, 1)
    assert inspect_digest(src, "prod/web", "v1") == digest


def test_repromotion_moves_nothing(tmp_path: Path, src: str, dst: str) -> None:
    digest = make_image(src, "app", "v1", workdir=tmp_path / "w")
    first = copy_image(parse(f"{src}/app:v1"), parse(f"{dst}/app:v1"), insecure=True)
    assert first.bytes_moved > 0
    again = copy_image(parse(f"{src}/app@{digest}"), parse(f"{dst}/app:v1"), insecure=True)
    assert again == CopyReport(digest, 0, 0, 0, 0, 0)
    # a second tag for a manifest the destination has: only the tag is written
    other = copy_image(parse(f"{src}/app:v1"), parse(f"{dst}/app:stable"), insecure=True)
    assert other == CopyReport(digest, 0, 0, 0, 0, 1)
    # by digest only, nothing at all
    assert copy_image(parse(f"{src}/app:v1"), parse(f"{dst}/app"), insecure=True).manifests == 0


def test_blobs_the_destination_has_are_skipped(tmp_path: Path, src: str, dst: str) -> None:
    # same seed, one more layer: the first two layers are shared, the config is not
    make_image(src, "app", "v1", layers=2, workdir=tmp_path / "w", seed=5)
    digest = make_image(src, "app", "v2", layers=3, workdir=tmp_path / "w", seed=5)
    copy_image(parse(f"{src}/app:v1"), parse(f"{dst}/app:v1"), insecure=True)
    report = copy_image(parse(f"{src}/app:v2"), parse(f"{dst}/app:v2"), insecure=True)
    old, new = blob_sizes(src, "app", "v1"), blob_sizes(src, "app", "v2")
    fresh = {d: size for d, size in new.items() if d not in old}
    assert len(fresh) == 2
    assert report == CopyReport(digest, sum(fresh.values()), 2, 0, 2, 1)


def test_tags_are_immutable_unless_forced(tmp_path: Path, src: str, dst: str) -> None:
    one = make_image(src, "app", "v1", workdir=tmp_path / "w", seed=1)
    two = make_image(src, "app", "v2", workdir=tmp_path / "w", seed=2)
    copy_image(parse(f"{src}/app:v1"), parse(f"{dst}/app:prod"), insecure=True)
    with pytest.raises(TagConflict, match="immutable") as info:
        copy_image(parse(f"{src}/app:v2"), parse(f"{dst}/app:prod"), insecure=True)
    assert isinstance(info.value, Conflict)
    assert one in str(info.value) and two in str(info.value)
    assert inspect_digest(dst, "app", "prod") == one
    # refused before anything moved
    assert not set(blob_sizes(src, "app", "v2")) & blobs_on_disk(tmp_path / "dst")
    report = copy_image(parse(f"{src}/app:v2"), parse(f"{dst}/app:prod"), insecure=True, force=True)
    assert report.digest == two and report.manifests == 1 and report.blobs_copied == 3
    assert inspect_digest(dst, "app", "prod") == two


def test_auth_refused_and_accepted(tmp_path: Path, src: str, dst: str) -> None:
    digest = make_image(src, "app", "v1", workdir=tmp_path / "w")
    with registry(tmp_path / "locked", htpasswd=CREDS) as locked:
        source, dest = parse(f"{src}/app:v1"), parse(f"{locked}/app:v1")
        with pytest.raises(AuthRefused) as info:
            copy_image(source, dest, dest_auth=Credentials("alice", "wrong-pass"), insecure=True)
        assert "wrong-pass" not in str(info.value)
        with pytest.raises(AuthRefused, match="requires credentials"):
            copy_image(source, dest, insecure=True)
        report = copy_image(source, dest, dest_auth=Credentials(*CREDS), insecure=True)
        assert report.blobs_copied == 3
        assert inspect_digest(locked, "app", "v1", auth=CREDS) == digest
        # and as a source, to a third registry
        back = copy_image(
            dest, parse(f"{dst}/app:v1"), source_auth=Credentials(*CREDS), insecure=True
        )
        assert back.digest == digest
        with pytest.raises(AuthRefused):
            copy_image(dest, parse(f"{dst}/app:v2"), insecure=True)


def test_missing_images(tmp_path: Path, src: str, dst: str) -> None:
    digest = make_image(src, "app", "v1", workdir=tmp_path / "w")
    missing = "sha256:" + "0" * 64
    for ref in [f"{src}/app:nope", f"{src}/nothing:v1", f"{src}/app@{missing}"]:
        with pytest.raises(ImageNotFound) as info:
            copy_image(parse(ref), parse(f"{dst}/app:v1"), insecure=True)
        assert isinstance(info.value, NotFound)
    assert manifest_status(dst, "app", "v1") == 404
    assert digest


def test_index_with_two_platforms(tmp_path: Path, src: str, dst: str) -> None:
    digest = make_image(
        src, "multi", "v1", platforms=["linux/amd64", "linux/arm64"], workdir=tmp_path / "w"
    )
    report = copy_image(parse(f"{src}/multi:v1"), parse(f"{dst}/multi:v1"), insecure=True)
    assert report.digest == digest
    assert report.manifests == 3 and report.blobs_copied == 6
    assert inspect_raw(dst, "multi", "v1") == inspect_raw(src, "multi", "v1")
    stored = blobs_on_disk(tmp_path / "dst")
    for child in json.loads(inspect_raw(src, "multi", "v1"))["manifests"]:
        assert manifest_status(dst, "multi", child["digest"]) == 200
        assert child["digest"] in stored


def test_docker_schema2_manifest_list(tmp_path: Path, src: str, dst: str) -> None:
    make_image(src, "app", "oci", workdir=tmp_path / "w")
    oci = json.loads(inspect_raw(src, "app", "oci"))
    image = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {**oci["config"], "mediaType": "application/vnd.docker.container.image.v1+json"},
        "layers": [
            {**layer, "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip"}
            for layer in oci["layers"]
        ],
    }
    raw = json.dumps(image, indent=3).encode()  # odd spacing: bytes must survive as they are
    put = f"http://{src}/v2/app/manifests/docker"
    r = httpx.put(put, content=raw, headers={"Content-Type": DOCKER_MANIFEST}, trust_env=False)
    assert r.status_code == 201, r.text
    entry = {
        "mediaType": DOCKER_MANIFEST,
        "digest": r.headers["Docker-Content-Digest"],
        "size": len(raw),
        "platform": {"os": "linux", "architecture": "amd64"},
    }
    listing = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [entry]})
    r = httpx.put(
        f"http://{src}/v2/app/manifests/list",
        content=listing.encode(),
        headers={"Content-Type": DOCKER_LIST},
        trust_env=False,
    )
    assert r.status_code == 201, r.text
    for tag in ("docker", "list"):
        copy_image(parse(f"{src}/app:{tag}"), parse(f"{dst}/app:{tag}"), insecure=True)
        assert inspect_raw(dst, "app", tag) == inspect_raw(src, "app", tag)
        got = httpx.get(
            f"http://{dst}/v2/app/manifests/{tag}",
            headers={"Accept": f"{DOCKER_MANIFEST}, {DOCKER_LIST}"},
            trust_env=False,
        )
        assert got.headers["Content-Type"] == (DOCKER_MANIFEST if tag == "docker" else DOCKER_LIST)


def test_source_digest_wins_over_its_tag(tmp_path: Path, src: str, dst: str) -> None:
    old = make_image(src, "app", "v1", workdir=tmp_path / "w", seed=1)
    new = make_image(src, "app", "v1", workdir=tmp_path / "w", seed=2)  # the tag moved
    report = copy_image(parse(f"{src}/app:v1@{old}"), parse(f"{dst}/app:v1"), insecure=True)
    assert report.digest == old != new
    assert inspect_digest(dst, "app", "v1") == old


def test_https_is_required_unless_insecure(tmp_path: Path, src: str, dst: str) -> None:
    make_image(src, "app", "v1", workdir=tmp_path / "w")
    started = time.monotonic()
    with pytest.raises(RegistryProtocolError, match="insecure=True"):
        copy_image(parse(f"{src}/app:v1"), parse(f"{dst}/app:v1"))
    assert time.monotonic() - started < 5  # refused, not retried


def test_cancel_leaves_no_tag(tmp_path: Path, src: str, dst: str) -> None:
    make_image(src, "app", "v1", layers=3, layer_size=1 << 20, workdir=tmp_path / "w")
    cancel = threading.Event()

    def progress(what: str, done: int, total: int) -> None:
        if done > 0:
            cancel.set()

    with pytest.raises(CopyCancelled):
        copy_image(
            parse(f"{src}/app:v1"),
            parse(f"{dst}/app:v1"),
            insecure=True,
            progress=progress,
            cancel=cancel,
            concurrency=2,
        )
    assert manifest_status(dst, "app", "v1") == 404


# --- a registry behind a proxy that misbehaves on purpose ---------------------------------


def test_a_failed_upload_is_retried(tmp_path: Path, src: str, dst: str) -> None:
    digest = make_image(src, "app", "v1", layers=3, workdir=tmp_path / "w")
    failed: list[str] = []

    def fault(method: str, path: str, headers: Mapping[str, str]) -> Answer | None:
        if method in ("PUT", "PATCH") and "/blobs/uploads/" in path and not failed:
            failed.append(path)
            return fail(500)
        return None

    with Proxy(dst, intercept=fault) as proxy:
        report = copy_image(parse(f"{src}/app:v1"), parse(f"{proxy.host}/app:v1"), insecure=True)
    assert len(failed) == 1
    blobs = blob_sizes(src, "app", "v1")
    assert report == CopyReport(digest, sum(blobs.values()), len(blobs), 0, 0, 1)
    assert inspect_digest(dst, "app", "v1") == digest
    assert {*blobs, digest} <= blobs_on_disk(tmp_path / "dst")
    uploads = [r for r in proxy.requests if r[0] == "PUT" and "/blobs/uploads/" in r[1]]
    assert [status for _, _, status in uploads].count(500) == 1
    assert [status for _, _, status in uploads].count(201) == len(blobs)


def test_a_corrupt_blob_is_never_completed(tmp_path: Path, src: str, dst: str) -> None:
    make_image(src, "app", "v1", layers=1, workdir=tmp_path / "w")
    layer = json.loads(inspect_raw(src, "app", "v1"))["layers"][0]["digest"]

    def mangle(method: str, path: str, body: bytes) -> bytes:
        if method == "GET" and path.endswith(layer):
            return body[:-1] + bytes([body[-1] ^ 1])
        return body

    with Proxy(src, mangle=mangle) as proxy, pytest.raises(TransferFailed) as info:
        copy_image(parse(f"{proxy.host}/app:v1"), parse(f"{dst}/app:v1"), insecure=True)
    assert isinstance(info.value, TransientError)
    assert "digest mismatch" in str(info.value) and "gave up after 5 tries" in str(info.value)
    assert manifest_status(dst, "app", "v1") == 404
    assert layer not in blobs_on_disk(tmp_path / "dst")


def test_server_errors_exhaust_retries(tmp_path: Path, src: str, dst: str) -> None:
    make_image(src, "app", "v1", workdir=tmp_path / "w")
    with (
        Proxy(dst, intercept=lambda m, p, h: fail(503) if m == "POST" else None) as proxy,
        pytest.raises(TransferFailed, match="HTTP 503"),
    ):
        copy_image(parse(f"{src}/app:v1"), parse(f"{proxy.host}/app:v1"), insecure=True)
    assert manifest_status(dst, "app", "v1") == 404


def test_bearer_token_flow_with_expiring_tokens(tmp_path: Path, src: str, dst: str) -> None:
    digest = make_image(src, "app", "v1", layers=3, workdir=tmp_path / "w")
    gate = TokenGate("bob", "token-pass", uses=5)
    with Proxy(dst, intercept=gate) as proxy:
        gate.realm = f"http://{proxy.host}/token"
        dest = parse(f"{proxy.host}/team/app:v1")
        with pytest.raises(AuthRefused, match="token service"):
            copy_image(
                parse(f"{src}/app:v1"), dest, dest_auth=Credentials("bob", "x"), insecure=True
            )
        report = copy_image(
            parse(f"{src}/app:v1"),
            dest,
            dest_auth=Credentials("bob", "token-pass"),
            insecure=True,
            concurrency=1,
        )
    assert report.digest == digest and report.blobs_copied == 4
    assert inspect_digest(dst, "team/app", "v1") == digest
    assert gate.issued > 2  # tokens ran out and were renewed, mid-upload too
    assert set(gate.token_scopes) == {"repository:team/app:pull,push"}
    # the registry only ever saw tokens: the password went to the realm alone
    assert all(a == "" or a.startswith("Bearer token-") for a in gate.registry_auth)


def test_timeout_bounds_the_whole_copy(tmp_path: Path, src: str, dst: str) -> None:
    make_image(src, "app", "v1", workdir=tmp_path / "w")

    def stall(method: str, path: str, headers: Mapping[str, str]) -> Answer | None:
        if method == "PUT" and "/blobs/uploads/" in path:
            proxy.closing.wait(3)
            return fail(503)
        return None

    started = time.monotonic()
    proxy = Proxy(dst, intercept=stall)
    with proxy, pytest.raises(TransferFailed, match="within 1s"):
        copy_image(
            parse(f"{src}/app:v1"), parse(f"{proxy.host}/app:v1"), insecure=True, timeout=1.0
        )
    assert time.monotonic() - started < 5
    assert manifest_status(dst, "app", "v1") == 404


@pytest.mark.parametrize("header", ["matching", "missing", "lying"])
def test_a_registry_serving_another_manifest_for_a_digest_fails_the_copy(
    tmp_path: Path, src: str, dst: str, header: str
) -> None:
    """Asked for app@D, a registry (or a proxy) answers with another image's manifest:
    whatever its Docker-Content-Digest says, the bytes do not hash to D (issue 11)."""
    wanted = make_image(src, "app", "v1", layers=1, workdir=tmp_path / "w1")
    make_image(src, "app", "v2", layers=2, workdir=tmp_path / "w2")
    other = inspect_raw(src, "app", "v2")
    other_digest = inspect_digest(src, "app", "v2")
    assert other_digest != wanted
    claims = {"matching": other_digest, "missing": None, "lying": wanted}

    def substitute(method: str, path: str, headers: Mapping[str, str]) -> Answer | None:
        if method in ("GET", "HEAD") and path.endswith(f"/manifests/{wanted}"):
            media = json.loads(other)["mediaType"]
            answer = {"Content-Type": media}
            if claims[header]:
                answer["Docker-Content-Digest"] = str(claims[header])
            return 200, answer, other if method == "GET" else b""
        return None

    with Proxy(src, intercept=substitute) as proxy, pytest.raises(TransferFailed) as info:
        copy_image(parse(f"{proxy.host}/app@{wanted}"), parse(f"{dst}/app:v1"), insecure=True)
    assert "digest mismatch" in str(info.value)
    assert f"expected {wanted}" in str(info.value)
    assert manifest_status(dst, "app", "v1") == 404
