"""Manifests: the media types we copy, what they reference, and verified fetch/put.

Copied byte for byte: a manifest is never re-serialised, since any change (key order,
whitespace) would change its digest and so the identity of what was tested.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import httpx

from conveyor.oci.errors import RegistryProtocolError
from conveyor.oci.reference import check_digest
from conveyor.oci.retry import Retryable, with_retries
from conveyor.oci.session import Session

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
# every type we can copy, so the registry never converts (distribution rewrites schema 2
# to schema 1 for a client that does not accept schema 2, changing the digest)
ACCEPT = ", ".join([OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST])
# distribution refuses larger manifests; a bigger answer is not a manifest
MAX_MANIFEST = 4 * 1024 * 1024


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int


@dataclass(frozen=True)
class Manifest:
    digest: str
    media_type: str
    raw: bytes
    children: tuple[Descriptor, ...]  # the manifests an index lists
    blobs: tuple[Descriptor, ...]  # an image's config and (distributable) layers

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def _descriptor(item: Any, where: str) -> Descriptor:
    if not isinstance(item, dict):
        raise RegistryProtocolError(f"{where}: a descriptor is not an object")
    digest, size = item.get("digest"), item.get("size")
    media_type = item.get("mediaType", "")
    if not isinstance(digest, str) or not isinstance(size, int) or size < 0:
        raise RegistryProtocolError(f"{where}: a descriptor lacks a digest or size")
    try:
        # digests go into URLs: only well-formed ones, of algorithms we can verify
        check_digest(digest)
    except ValueError as e:
        raise RegistryProtocolError(f"{where}: {e}") from None
    return Descriptor(str(media_type), digest, size)


def parse_manifest(raw: bytes, content_type: str, digest: str, where: str) -> Manifest:
    try:
        doc = json.loads(raw)
    except ValueError:
        raise RegistryProtocolError(f"{where}: the manifest is not JSON") from None
    if not isinstance(doc, dict):
        raise RegistryProtocolError(f"{where}: the manifest is not a JSON object")
    # the document's own mediaType wins: Content-Type is only a fallback (OCI allows
    # omitting mediaType; some registries serve a generic Content-Type)
    media_type = doc.get("mediaType") or content_type.split(";")[0].strip()
    if doc.get("schemaVersion") != 2:
        raise RegistryProtocolError(
            f"{where}: schema version {doc.get('schemaVersion')!r} is not supported "
            "(Docker schema 1 images must be converted before promotion)"
        )
    if "manifests" in doc or media_type in INDEX_TYPES:
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise RegistryProtocolError(f"{where}: the index has no manifests list")
        if media_type not in INDEX_TYPES:
            media_type = OCI_INDEX
        children = tuple(_descriptor(e, where) for e in entries)
        return Manifest(digest, media_type, raw, children, ())
    layers = doc.get("layers")
    if not isinstance(layers, list) or "config" not in doc:
        raise RegistryProtocolError(f"{where}: {media_type or 'manifest'} has no config/layers")
    if media_type not in (OCI_MANIFEST, DOCKER_MANIFEST):
        media_type = media_type or OCI_MANIFEST
    blobs = [_descriptor(doc["config"], where)]
    for layer in layers:
        found = _descriptor(layer, where)
        # foreign/non-distributable layers live at their `urls`, not in registries
        if "nondistributable" not in found.media_type and "foreign" not in found.media_type:
            blobs.append(found)
    return Manifest(digest, media_type, raw, (), tuple(blobs))


def fetch(
    session: Session, repository: str, ref: str, *, hint: str, what: str, expect: str | None
) -> Manifest:
    """GET a manifest by tag or digest; its bytes must hash to `expect` (when copying by
    digest) or else to the registry's Docker-Content-Digest (when resolving a tag)."""
    url = session.url(f"/v2/{repository}/manifests/{ref}")

    def attempt() -> Manifest:
        response = session.send(
            "GET", url, hint=hint, what=what, headers={"Accept": ACCEPT}, stream=True, follow=True
        )
        session.expect(response, what)
        raw = b""
        try:
            for chunk in response.iter_bytes():
                raw += chunk
                if len(raw) > MAX_MANIFEST:
                    raise RegistryProtocolError(f"{what}: larger than {MAX_MANIFEST} bytes")
        except httpx.TransportError as e:
            raise Retryable(session.scrub(f"{type(e).__name__}: {e}")) from None
        finally:
            response.close()
        claimed = expect or response.headers.get("Docker-Content-Digest")
        if claimed:
            try:
                check_digest(claimed)
            except ValueError as e:
                raise RegistryProtocolError(f"{what}: {e}") from None
        algorithm = claimed.split(":", 1)[0] if claimed else "sha256"
        actual = digest_of(raw, algorithm)
        if claimed and actual != claimed:
            raise Retryable(f"digest mismatch: expected {claimed}, received {actual}")
        content_type = response.headers.get("Content-Type", "")
        return parse_manifest(raw, content_type, actual, what)

    return with_retries(attempt, session.halt, what)


def head(session: Session, repository: str, ref: str, *, hint: str, what: str) -> str | None:
    """The digest `ref` names in `repository`, or None when it does not exist."""
    url = session.url(f"/v2/{repository}/manifests/{ref}")
    headers = {"Accept": ACCEPT}

    def attempt() -> tuple[bool, str | None]:
        response = session.send("HEAD", url, hint=hint, what=what, headers=headers, follow=True)
        if response.status_code == 404:
            return False, None
        session.expect(response, what)
        return True, response.headers.get("Docker-Content-Digest")

    exists, digest = with_retries(attempt, session.halt, what)
    if not exists:
        return None
    if digest:
        return digest
    if ":" in ref:
        return ref
    # the header is optional on HEAD: read the manifest to know what the tag names
    return fetch(session, repository, ref, hint=hint, what=what, expect=None).digest


def put(session: Session, repository: str, ref: str, manifest: Manifest, *, hint: str) -> None:
    what = f"writing manifest {manifest.digest} to {session.registry}/{repository}:{ref}"
    url = session.url(f"/v2/{repository}/manifests/{ref}")
    headers = {"Content-Type": manifest.media_type}
    response = session.request(
        "PUT", url, hint=hint, what=what, headers=headers, content=manifest.raw
    )
    session.expect(response, what, ok=(201, 200))
    stored = response.headers.get("Docker-Content-Digest")
    if stored and stored != manifest.digest:
        raise RegistryProtocolError(f"{what}: the registry stored it as {stored}")
