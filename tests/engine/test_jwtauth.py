"""OIDC bearer JWTs checked against the issuer's keys, served by a real HTTP server on
loopback: the user and groups of a good token, and each refusal (issue 11)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from conveyor.clock import ManualClock
from conveyor.engine.jwtauth import Issuer, Verifier, load_issuers
from conveyor.errors import DefinitionError, Unauthenticated
from tests.httpserver import Server

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk(key: PrivateKeyTypes, kid: str, algorithm: str) -> dict[str, Any]:
    doc = json.loads(jwt.get_algorithm_by_name(algorithm).to_jwk(key.public_key()))  # type: ignore[union-attr]
    return dict(doc) | {"kid": kid, "use": "sig", "alg": algorithm}


@pytest.fixture
def issuer(server: Server) -> Issuer:
    base = server.url("/realms/platform")
    server.route(
        "/realms/platform/.well-known/openid-configuration",
        200,
        {"issuer": base, "jwks_uri": server.url("/realms/platform/keys")},
    )
    server.route(
        "/realms/platform/keys",
        200,
        {"keys": [jwk(RSA_KEY, "rsa-1", "RS256"), jwk(EC_KEY, "ec-1", "ES256")]},
    )
    return Issuer(issuer=base, audience="conveyor", userClaim="email")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def verifier(issuer: Issuer, clock: ManualClock) -> Verifier:
    return Verifier([issuer], clock)


Signer = Callable[..., str]


@pytest.fixture
def token(issuer: Issuer) -> Signer:
    def sign(
        key: Any = RSA_KEY, kid: str = "rsa-1", algorithm: str = "RS256", **changes: Any
    ) -> str:
        claims: dict[str, Any] = {
            "iss": issuer.issuer,
            "aud": "conveyor",
            "sub": "u-1842",
            "email": "ada@example.com",
            "groups": ["release-managers", "sre"],
            "iat": int(T0.timestamp()),
            "exp": int((T0 + timedelta(minutes=10)).timestamp()),
        }
        claims.update(changes)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid})

    return sign


def test_a_valid_token_names_the_user_and_their_groups(verifier: Verifier, token: Signer) -> None:
    who = verifier.identify(token())
    assert who.user == "oidc:ada@example.com"
    assert who.groups == frozenset({"release-managers", "sre"})
    assert not who.local
    assert verifier.identify(token(EC_KEY, "ec-1", "ES256")).user == "oidc:ada@example.com"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"exp": int((T0 - timedelta(minutes=5)).timestamp())}, "has expired"),
        ({"nbf": int((T0 + timedelta(hours=1)).timestamp())}, "not valid yet"),
        ({"aud": "another-app"}, "for another audience"),
        ({"iss": "https://evil.example.com"}, "issuer is not one this server trusts"),
        ({"exp": None}, "no 'exp' claim"),
        ({"email": None}, "no 'email' claim"),
    ],
)
def test_refusals(verifier: Verifier, token: Signer, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(Unauthenticated, match=message):
        verifier.identify(token(**changes))


def test_the_clock_decides_expiry_with_a_minute_of_leeway(
    verifier: Verifier, token: Signer, clock: ManualClock
) -> None:
    good = token()
    clock.advance(timedelta(minutes=10, seconds=59))
    assert verifier.identify(good).user == "oidc:ada@example.com"
    clock.advance(timedelta(seconds=2))
    with pytest.raises(Unauthenticated, match="has expired"):
        verifier.identify(good)


def test_forged_signatures_are_refused(verifier: Verifier, token: Signer) -> None:
    with pytest.raises(Unauthenticated, match="signature is not valid"):
        verifier.identify(token(OTHER_KEY, "rsa-1"))
    unsigned = jwt.encode({"iss": "x"}, None, algorithm="none")
    forged = token().rsplit(".", 1)[0].split(".")[1]
    with pytest.raises(Unauthenticated, match="issuer is not one"):
        verifier.identify(unsigned)
    header = jwt.utils.base64url_encode(b'{"alg":"none","kid":"rsa-1"}').decode()
    with pytest.raises(Unauthenticated, match="'none', not allowed"):
        verifier.identify(f"{header}.{forged}.")
    # HS256 "signed" with the issuer's public key: the classic key-confusion attack.
    public_pem = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = (
        jwt.utils.base64url_encode(b'{"alg":"HS256","kid":"rsa-1"}') + b"." + forged.encode()
    )
    mac = hmac.new(public_pem, signing_input, hashlib.sha256).digest()
    confused = (signing_input + b"." + jwt.utils.base64url_encode(mac)).decode()
    with pytest.raises(Unauthenticated, match="'HS256', not allowed"):
        verifier.identify(confused)
    with pytest.raises(Unauthenticated, match="not a JWT"):
        verifier.identify("cvt_not-a-jwt")


def test_a_rotated_key_is_fetched_once_and_made_up_key_ids_do_not_hammer_the_issuer(
    verifier: Verifier, token: Signer, server: Server, clock: ManualClock, issuer: Issuer
) -> None:
    assert verifier.identify(token()).user
    assert server.hits["/realms/platform/keys"] == 1
    rotated = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server.route("/realms/platform/keys", 200, {"keys": [jwk(rotated, "rsa-2", "RS256")]})
    with pytest.raises(Unauthenticated, match="key its issuer does not list"):
        verifier.identify(token(rotated, "rsa-2"))  # fetched under a minute ago: no refetch
    assert server.hits["/realms/platform/keys"] == 1
    clock.advance(timedelta(seconds=61))
    assert verifier.identify(token(rotated, "rsa-2", iat=None)).user
    assert server.hits["/realms/platform/keys"] == 2
    for kid in ("made-up-1", "made-up-2", "made-up-3"):
        with pytest.raises(Unauthenticated, match="does not list"):
            verifier.identify(token(rotated, kid, iat=None))
    assert server.hits["/realms/platform/keys"] == 2


def test_an_issuer_that_does_not_answer_refuses_cleanly(
    issuer: Issuer, clock: ManualClock, token: Signer, server: Server
) -> None:
    server.route("/realms/platform/keys", 503, b"down")
    secret = token()
    verifier = Verifier([issuer], clock)
    for _ in range(3):
        with pytest.raises(Unauthenticated, match="could not fetch the signing keys") as raised:
            verifier.identify(secret)
        assert secret not in str(raised.value)
    assert server.hits["/realms/platform/keys"] == 1  # a down issuer is not hammered
    clock.advance(timedelta(seconds=61))
    with pytest.raises(Unauthenticated, match="could not fetch"):
        verifier.identify(token(exp=int((T0 + timedelta(hours=1)).timestamp())))
    assert server.hits["/realms/platform/keys"] == 2


def test_only_names_in_the_groups_claim_count(verifier: Verifier, token: Signer) -> None:
    assert verifier.identify(token(groups=["sre", 1, {"a": 2}])).groups == {"sre"}
    assert verifier.identify(token(groups="sre")).groups == frozenset()


def test_the_config_file_is_checked_with_lines(tmp_path: Path) -> None:
    good = tmp_path / "oidc.yaml"
    good.write_text(
        "issuers:\n"
        "  - issuer: https://login.example.com/realms/platform\n"
        "    audience: conveyor\n"
        "    groupsClaim: roles\n"
    )
    (issuer,) = load_issuers(good)
    assert (issuer.audience, issuer.groupsClaim, issuer.userClaim) == ("conveyor", "roles", "sub")

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "issuers:\n"
        "  - issuer: http://login.example.com\n"
        "    audience: conveyor\n"
        "  - issuer: https://ok.example.com\n"
        "    algorithms: [HS256]\n"
    )
    with pytest.raises(DefinitionError) as raised:
        load_issuers(bad)
    text = str(raised.value)
    assert f"{bad}:2: field 'issuers[0].issuer': use https" in text
    assert f"{bad}:4: field 'issuers[1].audience': Field required" in text
    assert f"{bad}:5: field 'issuers[1].algorithms': use public-key algorithms only" in text
