"""Image references: `[registry/]repository[:tag][@digest]`, as docker and skopeo read them.

The grammar follows distribution's `reference` package: the first path component is a
registry only when it looks like a host (has a dot or a port, or is `localhost`), so
`team/web:1` is Docker Hub's `team/web`. Docker Hub is normalised to the host its API
actually lives on (`registry-1.docker.io`) and its single names to `library/NAME`, so two
spellings of one image compare equal and credentials are looked up under one name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from conveyor.model import imageref

DOCKER_HUB = "registry-1.docker.io"
HUB_ALIASES = frozenset({"docker.io", "index.docker.io", DOCKER_HUB})

_REGISTRY = imageref.REGISTRY
_REPOSITORY = imageref.REPOSITORY
_TAG = imageref.TAG
DIGEST = imageref.DIGEST
# the algorithms whose encoding we can check (and later verify bytes against)
_HEX_LENGTH = {"sha256": 64, "sha512": 128}
_MAX_NAME = imageref.MAX_NAME


def check_digest(digest: str) -> None:
    """ValueError unless `digest` is a sha256 or sha512 digest we can verify bytes against."""
    if not DIGEST.match(digest):
        raise ValueError(f"digest {digest!r} is not ALGORITHM:HEX (e.g. sha256:<64 hex digits>)")
    algorithm, encoded = digest.split(":", 1)
    length = _HEX_LENGTH.get(algorithm)
    if length is None:
        raise ValueError(f"digest algorithm {algorithm!r} is not supported (sha256, sha512)")
    if len(encoded) != length or not re.fullmatch(r"[0-9a-f]+", encoded):
        raise ValueError(f"a {algorithm} digest has {length} lowercase hex digits: {digest!r}")


def check_tag(tag: str) -> None:
    """ValueError unless `tag` is a valid tag (letters, digits, `_.-`, at most 128)."""
    if not _TAG.match(tag):
        raise ValueError(
            f"tag {tag!r} is not valid: up to 128 letters, digits, '_', '.' or '-', "
            "not starting with '.' or '-'"
        )


@dataclass(frozen=True)
class ImageRef:
    """One image (or index) in one repository of one registry.

    Constructed directly or by `parse`; either way it is validated, so its parts can go
    into URLs as they are.
    """

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    def __post_init__(self) -> None:
        registry = self.registry.lower()
        if not _REGISTRY.match(registry):
            raise ValueError(f"registry {self.registry!r} is not a host[:port]")
        repository = self.repository
        if registry in HUB_ALIASES:
            registry = DOCKER_HUB
            if "/" not in repository:
                repository = f"library/{repository}"
        if not _REPOSITORY.match(repository):
            raise ValueError(
                f"repository {self.repository!r} is not valid: lowercase letters, digits and "
                "'.', '_', '-' separators, components joined by '/'"
            )
        if len(registry) + 1 + len(repository) > _MAX_NAME:
            raise ValueError(f"image name is longer than {_MAX_NAME} characters")
        if self.tag is not None:
            check_tag(self.tag)
        if self.digest is not None:
            check_digest(self.digest)
        # normalising here (not only in parse) keeps equality meaningful for direct use
        object.__setattr__(self, "registry", registry)
        object.__setattr__(self, "repository", repository)

    def with_tag(self, tag: str) -> ImageRef:
        """The same repository under `tag`; a digest, if any, is kept (as distribution's
        `WithTag` does), which pins what the tag must resolve to."""
        return replace(self, tag=tag)

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text


def parse(ref: str) -> ImageRef:
    """Read `[registry/]repository[:tag][@digest]`; ValueError saying what is wrong.

    No default tag is filled in: a reference without tag or digest keeps both None, and
    the caller decides what that means (copy_image refuses it rather than guess `latest`).
    """
    if not ref:
        raise ValueError("image reference is empty")
    if ref.startswith("-"):
        # a reference like this is almost always a misplaced command-line option
        raise ValueError(f"image reference {ref!r} starts with '-' (an option?)")
    if any(c.isspace() for c in ref):
        raise ValueError(f"image reference {ref!r} contains whitespace")
    if "://" in ref:
        raise ValueError(f"image reference {ref!r} has a URL scheme; write host/repository:tag")
    name, digest = ref, None
    if "@" in ref:
        name, digest = ref.rsplit("@", 1)
        if not digest:
            raise ValueError(f"image reference {ref!r} ends with '@' but has no digest")
    tag = None
    # a ':' after the last '/' is a tag; before it, it can only be a registry port
    last = name.rfind("/")
    colon = name.rfind(":")
    if colon > last:
        name, tag = name[:colon], name[colon + 1 :]
        if not tag:
            raise ValueError(f"image reference {ref!r} ends with ':' but has no tag")
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        registry, repository = first, rest
    else:
        registry, repository = "docker.io", name
    if not repository:
        raise ValueError(f"image reference {ref!r} has no repository")
    if repository != repository.lower():
        raise ValueError(f"repository in {ref!r} must be lowercase")
    try:
        return ImageRef(registry, repository, tag, digest)
    except ValueError as e:
        raise ValueError(f"image reference {ref!r}: {e}") from None
