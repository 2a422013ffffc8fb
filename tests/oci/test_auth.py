"""Credentials, their sources, and the session's authentication: basic, the bearer token
flow, per-scope token caching, and credentials never leaving the registry they belong to
(fake registries over httpx.MockTransport; real ones are in test_copy.py)."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from conveyor.errors import Forbidden
from conveyor.oci.auth import Credentials, from_docker_config, from_override
from conveyor.oci.errors import AuthRefused, RegistryProtocolError, TransferFailed
from conveyor.oci.retry import Halt
from conveyor.oci.session import Session
from conveyor.oci.tokens import Challenge, parse_challenges

SECRET = "hunter2-very-secret"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_password_is_never_shown() -> None:
    creds = Credentials("alice", SECRET)
    assert SECRET not in repr(creds)
    assert SECRET not in str(creds)
    assert SECRET not in f"{creds!r} {creds}"
    assert "alice" in repr(creds)


# --- overrides ---------------------------------------------------------------------------


def test_override_user_password() -> None:
    assert from_override(f"alice:{SECRET}") == Credentials("alice", SECRET)
    # only the first colon separates: passwords may hold colons
    assert from_override("alice:a:b") == Credentials("alice", "a:b")
    assert from_override(f"  alice:{SECRET}\n") == Credentials("alice", SECRET)


def test_override_bare_token_is_oauth2accesstoken() -> None:
    assert from_override("ya29.token-value") == Credentials("oauth2accesstoken", "ya29.token-value")


@pytest.mark.parametrize("value", [None, "", "  \n"])
def test_override_empty_is_anonymous(value: str | None) -> None:
    assert from_override(value) is None


@pytest.mark.parametrize("value", [":pw", "user:", "@"])
def test_override_refuses_half_values_without_echoing(value: str) -> None:
    with pytest.raises(ValueError) as info:
        from_override(value)
    assert "pw" not in str(info.value)


def test_override_docker_config(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {"ghcr.io": {"auth": b64(f"bob:{SECRET}")}}}))
    assert from_override(f"@{config}") == Credentials("bob", SECRET)
    assert from_override(f"@{config}", registry="ghcr.io") == Credentials("bob", SECRET)
    assert from_override(f"@{config}", registry="quay.io") is None
    with pytest.raises(ValueError, match="not a file"):
        from_override(f"@{tmp_path / 'missing.json'}")


def test_override_config_with_several_registries_needs_the_registry(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    auths = {"ghcr.io": {"auth": b64("a:1")}, "quay.io": {"auth": b64("b:2")}}
    config.write_text(json.dumps({"auths": auths}))
    with pytest.raises(ValueError, match="2 registries"):
        from_override(f"@{config}")
    assert from_override(f"@{config}", registry="quay.io") == Credentials("b", "2")


# --- docker config -----------------------------------------------------------------------


def test_docker_config_key_spellings(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    auths = {
        "https://index.docker.io/v1/": {"auth": b64("hub:1")},
        "http://127.0.0.1:5000": {"auth": b64("local:2")},
        "https://GHCR.io/": {"username": "gh", "password": "3"},
        "quay.io": {"identitytoken": "refresh"},
    }
    config.write_text(json.dumps({"auths": auths, "credHelpers": {"quay.io": "x"}}))
    assert from_docker_config("registry-1.docker.io", config) == Credentials("hub", "1")
    assert from_docker_config("127.0.0.1:5000", config) == Credentials("local", "2")
    assert from_docker_config("ghcr.io", config) == Credentials("gh", "3")
    assert from_docker_config("quay.io", config) is None  # helpers and identity tokens: no
    assert from_docker_config("127.0.0.1:5001", config) is None


def test_docker_config_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert from_docker_config("ghcr.io") is None  # no file: anonymous
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"ghcr.io": {"auth": b64("x:y")}}}))
    assert from_docker_config("ghcr.io") == Credentials("x", "y")
    monkeypatch.delenv("DOCKER_CONFIG")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert from_docker_config("ghcr.io") is None


@pytest.mark.parametrize(
    "content", ["{not json", json.dumps({"auths": {"ghcr.io": {"auth": "!!!"}}}), "[]"]
)
def test_docker_config_malformed(tmp_path: Path, content: str) -> None:
    config = tmp_path / "config.json"
    config.write_text(content)
    with pytest.raises(ValueError, match=str(config)):
        from_docker_config("ghcr.io", config)


# --- challenges --------------------------------------------------------------------------


def test_parse_challenges() -> None:
    header = (
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:a/b:pull,push repository:c:pull", Basic realm="x\\"y"'
    )
    assert parse_challenges(header) == [
        Challenge(
            "bearer",
            {
                "realm": "https://auth.example/token",
                "service": "registry.example",
                "scope": "repository:a/b:pull,push repository:c:pull",
            },
        ),
        Challenge("basic", {"realm": 'x"y'}),
    ]
    assert parse_challenges("") == []
    assert parse_challenges("Bearer realm=unquoted") == [Challenge("bearer", {"realm": "unquoted"})]


# --- sessions against fake registries -----------------------------------------------------

Handler = Callable[[httpx.Request], httpx.Response]


def session(
    handler: Handler, creds: Credentials | None = None, *, insecure: bool = False
) -> Session:
    return Session(
        "reg.example",
        creds,
        insecure=insecure,
        timeout=5.0,
        halt=Halt(),
        transport=httpx.MockTransport(handler),
    )


class TokenRegistry:
    """A registry with distribution-style token auth: realm on auth.example."""

    def __init__(self, user: str = "alice", password: str = SECRET) -> None:
        self.basic = "Basic " + b64(f"{user}:{password}")
        self.token_requests: list[httpx.Request] = []
        self.seen: list[httpx.Request] = []
        self.issued = 0
        self.valid: set[str] = set()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        if request.url.host == "auth.example":
            self.token_requests.append(request)
            if request.headers.get("Authorization") != self.basic:
                return httpx.Response(401)
            self.issued += 1
            token = f"tok{self.issued}"
            self.valid.add(token)
            return httpx.Response(200, json={"token": token})
        if request.headers.get("Authorization", "").removeprefix("Bearer ") in self.valid:
            return httpx.Response(200, content=b"{}")
        repo = request.url.path.split("/")[2]
        challenge = (
            'Bearer realm="https://auth.example/token",service="reg.example",'
            f'scope="repository:{repo}:pull"'
        )
        return httpx.Response(401, headers={"WWW-Authenticate": challenge})


def test_bearer_flow_exchanges_basic_credentials_for_a_cached_token() -> None:
    reg = TokenRegistry()
    with session(reg, Credentials("alice", SECRET)) as s:
        for _ in range(3):
            r = s.request("GET", s.url("/v2/app/tags/list"), hint="pull app", what="t")
            assert r.status_code == 200
        assert len(reg.token_requests) == 1  # cached per scope
        token_request = reg.token_requests[0]
        assert token_request.url.params.get_list("scope") == ["repository:app:pull"]
        assert token_request.url.params["service"] == "reg.example"
        # the token went to the registry; the basic credentials only to the realm
        registry_auth = [
            r.headers.get("Authorization") for r in reg.seen if r.url.host != "auth.example"
        ]
        assert registry_auth == [None, "Bearer tok1", "Bearer tok1", "Bearer tok1"]
        # another scope earns its own token
        s.request("GET", s.url("/v2/other/tags/list"), hint="pull other", what="t")
        assert len(reg.token_requests) == 2


def test_expired_token_is_renewed_once() -> None:
    reg = TokenRegistry()
    with session(reg, Credentials("alice", SECRET)) as s:
        s.request("GET", s.url("/v2/app/tags/list"), hint="h", what="t")
        reg.valid.clear()  # every token expires
        r = s.request("GET", s.url("/v2/app/tags/list"), hint="h", what="t")
        assert r.status_code == 200
        assert reg.issued == 2


def test_wrong_password_is_auth_refused_without_the_password() -> None:
    reg = TokenRegistry()
    with (
        session(reg, Credentials("alice", "wrong-password")) as s,
        pytest.raises(AuthRefused) as info,
    ):
        s.request("GET", s.url("/v2/app/tags/list"), hint="h", what="reading app")
    assert isinstance(info.value, Forbidden)
    assert "wrong-password" not in str(info.value)
    assert "refused the credentials" in str(info.value)


def test_basic_registry() -> None:
    good = "Basic " + b64(f"alice:{SECRET}")
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization"))
        if request.headers.get("Authorization") == good:
            return httpx.Response(200)
        return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})

    with session(handler, Credentials("alice", SECRET)) as s:
        assert s.request("GET", s.url("/v2/"), hint="h", what="t").status_code == 200
        assert s.request("GET", s.url("/v2/x"), hint="other", what="t").status_code == 200
    assert seen == [None, good, good]  # once basic is known, sent up front
    with session(handler) as s, pytest.raises(AuthRefused, match="requires credentials"):
        s.request("GET", s.url("/v2/"), hint="h", what="t")
    with session(handler, Credentials("alice", "nope")) as s:
        r = s.request("GET", s.url("/v2/"), hint="h", what="t")
        with pytest.raises(AuthRefused, match="HTTP 401"):
            s.expect(r, "t")


def test_redirect_to_another_host_drops_authorization(caplog: pytest.LogCaptureFixture) -> None:
    reg = TokenRegistry()
    storage: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "storage.example":
            storage.append(request)
            return httpx.Response(200, content=b"blob")
        response = reg(request)
        if response.status_code == 200 and request.url.host == "reg.example":
            # distribution with a storage backend that redirects blob reads
            where = "https://storage.example/blob?X-Amz-Signature=sig"
            return httpx.Response(307, headers={"Location": where})
        return response

    caplog.set_level(logging.DEBUG, logger="conveyor.oci")
    with session(handler, Credentials("alice", SECRET)) as s:
        r = s.request("GET", s.url("/v2/app/blobs/sha256:x"), hint="h", what="t", follow=True)
        assert r.content == b"blob"
    assert len(storage) == 1
    assert "Authorization" not in storage[0].headers
    assert "sig" not in caplog.text and SECRET not in caplog.text and "tok1" not in caplog.text


def test_same_host_redirect_keeps_authorization() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/v2/a":
            return httpx.Response(302, headers={"Location": "/v2/b"})
        return httpx.Response(200)

    with session(handler, Credentials("alice", SECRET)) as s:
        s._authz._basic = True  # as after a Basic challenge
        s.request("GET", s.url("/v2/a"), hint="h", what="t", follow=True)
    assert [r.url.path for r in seen] == ["/v2/a", "/v2/b"]
    assert all(r.headers.get("Authorization", "").startswith("Basic ") for r in seen)


def test_https_only_unless_insecure() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/a":
            return httpx.Response(302, headers={"Location": "http://reg.example/v2/b"})
        if request.url.host == "auth.example":
            return httpx.Response(200, json={"token": "t"})
        if request.url.path == "/v2/c":
            challenge = 'Bearer realm="http://auth.example/token"'
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        return httpx.Response(200)

    with session(handler) as s:
        assert s.base == "https://reg.example"
        with pytest.raises(RegistryProtocolError, match="plain-http"):
            s.request("GET", s.url("/v2/a"), hint="h", what="t", follow=True)
        with pytest.raises(RegistryProtocolError, match="realm"):
            s.request("GET", s.url("/v2/c"), hint="h", what="t")
    with session(handler, insecure=True) as s:
        r = s.request("GET", s.url("/v2/a"), hint="h", what="t", follow=True)
        assert r.status_code == 200


def test_transient_statuses_are_retried_then_give_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("conveyor.oci.retry.FIRST_DELAY", 0.001)
    statuses = [503, 429, 200]
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        status = statuses.pop(0) if statuses else 500
        return httpx.Response(status, headers={"Retry-After": "0"} if status == 429 else {})

    with session(handler) as s:
        assert s.request("GET", s.url("/v2/"), hint="h", what="t").status_code == 200
        assert len(calls) == 3
        with pytest.raises(TransferFailed, match="gave up after 5 tries"):
            s.request("GET", s.url("/v2/"), hint="h", what="t")
        assert len(calls) == 8
