"""Local OCI registries for tests, benches and `conveyor demo --registry`: Debian's
`docker-registry` (distribution 2.8) served on loopback over plain http, images built in
Python as OCI layouts and pushed with `skopeo`, and helpers to look at what reached a
registry. Not used by promotions themselves."""

from __future__ import annotations

import gzip
import io
import json
import random
import socket
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from conveyor.oci.manifest import OCI_INDEX as OCI_INDEX
from conveyor.oci.manifest import OCI_MANIFEST as OCI_MANIFEST
from conveyor.oci.manifest import digest_of

REGISTRY_BIN = "docker-registry"
SKOPEO_BIN = "skopeo"
SKOPEO_TIMEOUT = 60.0  # seconds for any one skopeo call

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


class SkopeoError(RuntimeError):
    """A skopeo call failed; the message carries its stderr."""

    def __init__(self, args: list[str], returncode: int, stderr: str) -> None:
        super().__init__(f"skopeo exited {returncode}: {' '.join(args)}\n{stderr.strip()}")
        self.returncode = returncode
        self.stderr = stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _htpasswd_line(user: str, password: str) -> str:
    import bcrypt  # a test dependency: only registries with htpasswd need it

    # distribution only accepts bcrypt entries; cost 4 keeps logins fast
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4, prefix=b"2a"))
    return f"{user}:{hashed.decode()}\n"


def _config_yaml(root: Path, port: int, htpasswd_file: Path | None, log_level: str) -> str:
    # JSON is YAML: no yaml dependency needed
    config: dict[str, Any] = {
        "version": "0.1",
        "log": {"level": log_level, "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(root)},
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {"addr": f"127.0.0.1:{port}", "secret": "conveyor-tests"},
        "health": {"storagedriver": {"enabled": False}},
    }
    if htpasswd_file is not None:
        config["auth"] = {"htpasswd": {"realm": "test", "path": str(htpasswd_file)}}
    return json.dumps(config, indent=2) + "\n"


@contextmanager
def registry(
    root: Path, htpasswd: tuple[str, str] | None = None, log_level: str = "error"
) -> Iterator[str]:
    """Serve a registry storing under `root` (storage at `root/docker/registry/v2`) on a free
    loopback port over plain http; with `htpasswd=(user, password)` every request needs basic
    auth. `log_level="info"` logs every request to `root/registry.log`. Yields "127.0.0.1:PORT"."""
    root.mkdir(parents=True, exist_ok=True)
    htpasswd_file: Path | None = None
    if htpasswd is not None:
        htpasswd_file = root / "htpasswd"
        htpasswd_file.write_text(_htpasswd_line(*htpasswd))
    port = _free_port()
    config = root / "registry.yml"
    config.write_text(_config_yaml(root, port, htpasswd_file, log_level))
    log_path = root / "registry.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [REGISTRY_BIN, "serve", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        host = f"127.0.0.1:{port}"
        expected = 401 if htpasswd is not None else 200
        deadline = time.monotonic() + 10.0
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"docker-registry exited {proc.returncode}: {log_path.read_text()}"
                )
            try:
                status = httpx.get(f"http://{host}/v2/", timeout=1.0, trust_env=False).status_code
            except httpx.TransportError:
                status = None
            if status == expected:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"docker-registry on {host} not ready (last status {status}): "
                    f"{log_path.read_text()}"
                )
            time.sleep(0.05)
        yield host
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _skopeo(*args: str) -> bytes:
    argv = [SKOPEO_BIN, "--insecure-policy", *args]
    try:
        done = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=SKOPEO_TIMEOUT
        )
    except subprocess.TimeoutExpired as e:
        raise SkopeoError(argv, -1, f"timed out after {SKOPEO_TIMEOUT}s") from e
    if done.returncode != 0:
        raise SkopeoError(argv, done.returncode, done.stderr.decode(errors="replace"))
    return done.stdout


def _creds(auth: tuple[str, str] | None, flag: str, anonymous: str) -> list[str]:
    return [anonymous] if auth is None else [flag, f"{auth[0]}:{auth[1]}"]


def inspect_raw(host: str, repository: str, tag: str, auth: tuple[str, str] | None = None) -> bytes:
    """The top-level manifest (or index) exactly as the registry serves it."""
    return _skopeo(
        "inspect",
        "--raw",
        "--tls-verify=false",
        *_creds(auth, "--creds", "--no-creds"),
        f"docker://{host}/{repository}:{tag}",
    )


def inspect_digest(
    host: str, repository: str, tag: str, auth: tuple[str, str] | None = None
) -> str:
    """ "sha256:..." of the top-level manifest (or index) the registry serves for `tag`."""
    return digest_of(inspect_raw(host, repository, tag, auth))


def blobs_on_disk(root: Path) -> set[str]:
    """Digests ("sha256:...") of every blob in the registry storage under `root`."""
    base = root / "docker" / "registry" / "v2" / "blobs" / "sha256"
    return {f"sha256:{data.parent.name}" for data in base.glob("*/*/data")}


class _Layout:
    """An OCI image layout directory being written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        (path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (path / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))

    def blob(self, media_type: str, data: bytes) -> dict[str, Any]:
        digest = digest_of(data)
        (self.path / "blobs" / "sha256" / digest.removeprefix("sha256:")).write_bytes(data)
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def tag(self, tag: str, descriptor: dict[str, Any]) -> None:
        ref = {**descriptor, "annotations": {"org.opencontainers.image.ref.name": tag}}
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [ref]}
        (self.path / "index.json").write_text(json.dumps(index))


def _canonical(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _layer(rng: random.Random, name: str, size: int) -> tuple[bytes, bytes]:
    """(gzip'ed tar, uncompressed tar) holding one file of random bytes, fixed metadata."""
    content = rng.randbytes(size)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        info.mode = 0o644
        info.mtime = 0
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        tar.addfile(info, io.BytesIO(content))
    tar_bytes = raw.getvalue()
    return gzip.compress(tar_bytes, compresslevel=1, mtime=0), tar_bytes


def _platform(spec: str) -> dict[str, str]:
    parts = spec.split("/")
    if len(parts) not in (2, 3):
        raise ValueError(f"platform {spec!r} is not os/arch[/variant]")
    platform = {"os": parts[0], "architecture": parts[1]}
    if len(parts) == 3:
        platform["variant"] = parts[2]
    return platform


def _image(
    layout: _Layout,
    rng: random.Random,
    platform: dict[str, str],
    layers: int,
    layer_size: int,
) -> dict[str, Any]:
    """Write one image (layers, config, manifest) into `layout`; returns its descriptor."""
    layer_descs: list[dict[str, Any]] = []
    diff_ids: list[str] = []
    for i in range(layers):
        compressed, uncompressed = _layer(rng, f"layer-{i}.bin", layer_size)
        layer_descs.append(layout.blob(OCI_LAYER_GZIP, compressed))
        diff_ids.append(digest_of(uncompressed))
    config = {
        **platform,
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    config_desc = layout.blob(OCI_CONFIG, _canonical(config))
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_desc,
        "layers": layer_descs,
    }
    return layout.blob(OCI_MANIFEST, _canonical(manifest))


def make_image(
    host: str,
    repository: str,
    tag: str,
    *,
    layers: int = 2,
    layer_size: int = 64 * 1024,
    platforms: list[str] | None = None,
    auth: tuple[str, str] | None = None,
    workdir: Path,
    seed: int = 0,
) -> str:
    """Build an OCI image (or, with `platforms`, an OCI index of one image per platform) whose
    bytes depend only on `seed`, `layers`, `layer_size` and `platforms` (not on the repository
    or tag: the same seed pushed twice gives the same blobs and digest), push it to
    `host/repository:tag` with skopeo, and return the registry's digest of the top-level
    manifest or index (checked equal to the locally computed one)."""
    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    layout = _Layout(Path(tempfile.mkdtemp(prefix="oci-", dir=workdir)))
    if platforms is None:
        top = _image(layout, rng, {"os": "linux", "architecture": "amd64"}, layers, layer_size)
    else:
        entries = []
        for spec in platforms:
            platform = _platform(spec)
            entries.append(
                {**_image(layout, rng, platform, layers, layer_size), "platform": platform}
            )
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        top = layout.blob(OCI_INDEX, _canonical(index))
    layout.tag(tag, top)
    _skopeo(
        "copy",
        "--quiet",
        "--preserve-digests",
        *(["--all"] if platforms is not None else []),
        "--dest-tls-verify=false",
        *_creds(auth, "--dest-creds", "--dest-no-creds"),
        f"oci:{layout.path}:{tag}",
        f"docker://{host}/{repository}:{tag}",
    )
    digest = inspect_digest(host, repository, tag, auth)
    if digest != top["digest"]:
        raise RuntimeError(f"pushed {top['digest']} but registry serves {digest}")
    return digest
