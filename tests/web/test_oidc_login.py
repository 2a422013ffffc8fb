"""Logging in to the pages with an OIDC issuer: authorization code with PKCE against a small
issuer on loopback that checks the code challenge, then the ID token is the session; a
forged state or a wrong verifier logs nobody in (issue 12)."""

from __future__ import annotations

import base64
import json
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from conveyor.clock import SystemClock
from conveyor.engine.service import Conveyor
from conveyor.model.access import Role, Scope
from conveyor.store.db import open_store
from conveyor.web.login import s256
from tests.conftest import BASE, apply_yaml
from tests.serving import serving

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
CLIENT = "conveyor-pages"


class Issuer(ThreadingHTTPServer):
    """Discovery, keys, /authorize (redirects back with a code) and /token (checks the
    PKCE verifier against the challenge, answers an ID token with the login's nonce)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.codes: dict[str, dict[str, str]] = {}
        self.lock = threading.Lock()

    def id_token(self, nonce: str) -> str:
        now = int(SystemClock().now().timestamp())  # the server checks against its own
        claims = {
            "iss": self.url,
            "aud": CLIENT,
            "sub": "u-7",
            "email": "ada@example.com",
            "groups": ["sre"],
            "nonce": nonce,
            "iat": now,
            "exp": now + 600,
        }
        return jwt.encode(claims, KEY, algorithm="RS256", headers={"kid": "k1"})


class _Handler(BaseHTTPRequestHandler):
    server: Issuer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _json(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        base = self.server.url
        if parts.path == "/.well-known/openid-configuration":
            self._json(
                200,
                {
                    "issuer": base,
                    "authorization_endpoint": f"{base}/authorize",
                    "token_endpoint": f"{base}/token",
                    "jwks_uri": f"{base}/keys",
                },
            )
        elif parts.path == "/keys":
            public = json.loads(jwt.get_algorithm_by_name("RS256").to_jwk(KEY.public_key()))
            self._json(200, {"keys": [public | {"kid": "k1", "alg": "RS256", "use": "sig"}]})
        elif parts.path == "/authorize":
            assert query["client_id"] == CLIENT and query["code_challenge_method"] == "S256"
            assert query["response_type"] == "code" and "openid" in query["scope"].split()
            code = secrets.token_urlsafe(16)
            with self.server.lock:
                self.server.codes[code] = query
            back = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"
            self.send_response(302)
            self.send_header("Location", back)
            self.end_headers()
        else:
            self._json(404, {})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        with self.server.lock:
            asked = self.server.codes.pop(form.get("code", ""), None)
        if (
            asked is None
            or form.get("grant_type") != "authorization_code"
            or form.get("redirect_uri") != asked["redirect_uri"]
            or s256(form.get("code_verifier", "")) != asked["code_challenge"]
        ):
            self._json(400, {"error": "invalid_grant"})
            return
        token = self.server.id_token(asked["nonce"])
        self._json(200, {"access_token": "at", "token_type": "Bearer", "id_token": token})


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    server = Issuer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


@pytest.fixture(scope="module")
def site(issuer: Issuer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("oidc")
    config = root / "oidc.yaml"
    config.write_text(
        f"issuers:\n  - issuer: {issuer.url}\n    audience: {CLIENT}\n    userClaim: email\n"
        f"    login: {{clientId: {CLIENT}, scopes: [openid, email, groups]}}\n"
    )
    db = root / "conveyor.db"
    cv = Conveyor(open_store(f"sqlite:///{db}"), actor="local:setup", workdir=root)
    cv.claim()
    apply_yaml(cv, BASE)
    cv.grant("group:sre", Role.VIEWER, Scope())
    cv.close()
    with serving(db, root, env={"CONVEYOR_OIDC_CONFIG": str(config)}) as url:
        yield url


def browser() -> httpx.Client:
    return httpx.Client(trust_env=False, timeout=30)


def start(client: httpx.Client, site: str) -> str:
    """Off to the issuer; the URL of its answer (the callback with a code)."""
    off = client.get(f"{site}/login/oidc", params={"next": "/flows"})
    assert off.status_code == 303
    at_issuer = client.get(off.headers["location"])
    assert at_issuer.status_code == 302
    return str(at_issuer.headers["location"])


def test_logging_in_with_the_issuer(site: str) -> None:
    with browser() as client:
        assert "Log in with single sign-on" in client.get(f"{site}/login").text
        back = start(client, site)
        assert back.startswith(f"{site}/login/oidc/callback?code=")
        landed = client.get(back)
        assert landed.status_code == 303 and landed.headers["location"] == "/flows"
        flows = client.get(f"{site}/flows")
        assert flows.status_code == 200 and "oidc:ada@example.com" in flows.text


def test_a_forged_state_or_a_wrong_verifier_logs_nobody_in(site: str) -> None:
    with browser() as client:
        back = start(client, site)
        forged = client.get(back.replace("state=", "state=x"))
        assert forged.status_code == 401 and "not started here" in forged.text
    with browser() as client:
        back = start(client, site)
        cookie = client.cookies["conveyor_oidc"]
        flow = json.loads(base64.urlsafe_b64decode(cookie))
        flow["verifier"] = "somebody-else's-verifier-" + "x" * 40
        forged_cookie = base64.urlsafe_b64encode(json.dumps(flow).encode()).decode()
        client.cookies.set("conveyor_oidc", forged_cookie, path="/login/oidc")
        refused = client.get(back)
        assert refused.status_code == 401 and "token endpoint failed" in refused.text
        assert client.get(f"{site}/flows").status_code == 303  # still to /login


def test_the_config_names_what_is_wrong(tmp_path: Path) -> None:
    from conveyor.engine.jwtauth import load_issuers
    from conveyor.errors import DefinitionError

    bad = tmp_path / "oidc.yaml"
    bad.write_text(
        "issuers:\n  - issuer: https://id.example\n    audience: c\n"
        "    login: {clientId: c, tokenEndpoint: http://id.example/token}\n"
    )
    with pytest.raises(DefinitionError, match=r"oidc.yaml:4: .*tokenEndpoint.*https"):
        load_issuers(bad)
