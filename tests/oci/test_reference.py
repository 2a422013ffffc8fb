"""Image references: parsing, normalisation, validation, printing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conveyor.oci.reference import ImageRef, parse

D = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("127.0.0.1:5000/team/web:v1", "127.0.0.1:5000", "team/web", "v1", None),
        ("ghcr.io/org/app@" + D, "ghcr.io", "org/app", None, D),
        ("ghcr.io/org/app:1.2.3@" + D, "ghcr.io", "org/app", "1.2.3", D),
        ("localhost/app", "localhost", "app", None, None),
        ("localhost:5000/a/b/c:latest", "localhost:5000", "a/b/c", "latest", None),
        ("nginx", "registry-1.docker.io", "library/nginx", None, None),
        ("nginx:1.25", "registry-1.docker.io", "library/nginx", "1.25", None),
        ("team/web:v1", "registry-1.docker.io", "team/web", "v1", None),
        ("docker.io/nginx", "registry-1.docker.io", "library/nginx", None, None),
        ("index.docker.io/library/nginx", "registry-1.docker.io", "library/nginx", None, None),
        ("GHCR.IO/org/app", "ghcr.io", "org/app", None, None),
        ("[::1]:5000/app:v1", "[::1]:5000", "app", "v1", None),
        ("reg.example/a_b/c__d/e-f.g:V_1.0-rc", "reg.example", "a_b/c__d/e-f.g", "V_1.0-rc", None),
    ],
)
def test_parse(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = parse(text)
    assert ref == ImageRef(registry, repository, tag, digest)
    assert parse(str(ref)) == ref


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("-x", "option"),
        ("--dest=foo", "option"),
        ("ghcr.io/org/app:v1 ", "whitespace"),
        ("https://ghcr.io/org/app", "scheme"),
        ("ghcr.io/Org/App", "lowercase"),
        ("ghcr.io/org/app:", "no tag"),
        ("ghcr.io/org/app@", "no digest"),
        ("ghcr.io/org/app@sha256:abc", "64 lowercase hex"),
        ("ghcr.io/org/app@md5:" + "a" * 32, "not supported"),
        ("ghcr.io/org/app@sha256:" + "A" * 64, "lowercase hex"),
        ("ghcr.io/org/app:-v1", "tag"),
        ("ghcr.io/org/app:" + "a" * 129, "tag"),
        ("ghcr.io/org//app", "repository"),
        ("ghcr.io/org/app/", "repository"),
        ("ghcr.io/", "no repository"),
        ("ghcr.io/org/../app", "repository"),
        ("ghcr.io/" + "a" * 250, "longer"),
    ],
)
def test_parse_refuses(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse(text)


def test_str_has_every_part() -> None:
    assert str(ImageRef("ghcr.io", "org/app")) == "ghcr.io/org/app"
    assert str(ImageRef("ghcr.io", "org/app", "v1")) == "ghcr.io/org/app:v1"
    assert str(ImageRef("ghcr.io", "org/app", digest=D)) == f"ghcr.io/org/app@{D}"
    assert str(ImageRef("ghcr.io", "org/app", "v1", D)) == f"ghcr.io/org/app:v1@{D}"


def test_direct_construction_is_validated_and_normalised() -> None:
    assert ImageRef("docker.io", "nginx") == ImageRef("registry-1.docker.io", "library/nginx")
    with pytest.raises(ValueError, match="tag"):
        ImageRef("ghcr.io", "org/app", tag="../x")
    with pytest.raises(ValueError, match="registry"):
        ImageRef("ghcr.io/evil", "org/app")
    with pytest.raises(ValueError, match="repository"):
        ImageRef("ghcr.io", "org/app?x=1")
    with pytest.raises(ValueError, match="digest"):
        ImageRef("ghcr.io", "org/app", digest="sha256:../../x")


def test_with_tag_keeps_the_digest_and_checks_the_tag() -> None:
    ref = parse(f"ghcr.io/org/app:v1@{D}")
    assert ref.with_tag("v2") == ImageRef("ghcr.io", "org/app", "v2", D)
    assert parse("ghcr.io/org/app").with_tag("prod").tag == "prod"
    with pytest.raises(ValueError, match="tag"):
        ref.with_tag("no/slash")


_component = st.from_regex(r"[a-z0-9]{1,8}(?:[._-][a-z0-9]{1,8})?", fullmatch=True)


@given(
    registry=st.sampled_from(["127.0.0.1:5000", "ghcr.io", "reg.example:443", "localhost"]),
    path=st.lists(_component, min_size=1, max_size=3),
    tag=st.none() | st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True),
    digest=st.none() | st.just(D),
)
def test_round_trip(registry: str, path: list[str], tag: str | None, digest: str | None) -> None:
    ref = ImageRef(registry, "/".join(path), tag, digest)
    assert parse(str(ref)) == ref
