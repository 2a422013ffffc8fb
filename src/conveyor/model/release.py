"""Releases: immutable snapshots of a product with pinned artifacts."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import semver

from conveyor.model.definitions import ArtifactDef
from conveyor.model.imageref import repository_problem

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
# An exact version (SemVer, an optional `v`): what a chart or a file release must name.
_EXACT = re.compile(r"^v?\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")


@dataclass(frozen=True)
class Artifact:
    name: str
    type: str
    ref: str  # what was given: registry/web@sha256:..., a commit SHA, a chart version
    repository: str = ""
    digest: str = ""
    version: str = ""

    def as_context(self) -> dict[str, str]:
        return {
            "name": self.name,
            "type": self.type,
            "ref": self.ref,
            "repository": self.repository,
            "digest": self.digest,
            "version": self.version,
        }


@dataclass(frozen=True)
class ReleaseInfo:
    product: str
    version: str
    artifacts: dict[str, Artifact] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)


def parse_version(text: str) -> semver.Version:
    try:
        return semver.Version.parse(text.removeprefix("v"))
    except ValueError:
        raise ValueError(
            f"'{text}' is not a semantic version: write MAJOR.MINOR.PATCH such as 1.2.3"
        ) from None


def canonical_version(text: str) -> str:
    """One spelling per version: `v1.2.3` and `1.2.3` are the same release."""
    return str(parse_version(text))


def newer(a: str, b: str) -> bool:
    """True when version `a` is newer than `b`."""
    return parse_version(a) > parse_version(b)


def pin_artifact(name: str, value: str, declared: ArtifactDef | None) -> Artifact:
    """Turn `registry/web@sha256:...` (or a commit SHA, a chart version) into a pinned artifact."""
    kind = declared.type if declared else ("git" if _COMMIT.match(value) else "image")
    repo = declared.repository if declared else ""
    if kind == "image":
        repository, _, digest = value.rpartition("@")
        if not _DIGEST.match(digest):
            raise ValueError(
                f"artifact '{name}' is not pinned: give an image digest such as "
                f"{repo or 'registry/' + name}@sha256:<64 hex>, not a tag"
            )
        why = repository_problem(repository) if repository else None
        if why:
            raise ValueError(f"artifact '{name}': image repository '{repository}' {why}")
        return Artifact(name, kind, value, repository or repo, digest)
    if kind == "git":
        repository, _, sha = value.rpartition("@")
        if not _COMMIT.match(sha):
            raise ValueError(f"artifact '{name}' is not pinned: give a full 40-hex commit SHA")
        return Artifact(name, kind, value, repository or repo, sha, sha)
    version = value.rpartition("@")[2]
    if not _EXACT.match(version):
        raise ValueError(
            f"artifact '{name}' is not pinned: '{version}' is not an exact version; give one "
            f"such as {name}@1.4.2 (not latest, *, a range or a tag)"
        )
    return Artifact(name, kind, value, repo, "", version)


def artifact_to_json(a: Artifact) -> dict[str, Any]:
    return a.as_context()


def artifact_from_json(d: dict[str, Any]) -> Artifact:
    return Artifact(
        d["name"],
        d["type"],
        d["ref"],
        d.get("repository", ""),
        d.get("digest", ""),
        d.get("version", ""),
    )
