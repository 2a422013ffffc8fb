"""OIDC bearer tokens: JWTs from configured issuers, checked against their published keys.

The server (issue 12) calls `Verifier.identify` for an `Authorization: Bearer` header that
is not a Conveyor API token. An issuer is trusted only as configured in the file named by
`CONVEYOR_OIDC_CONFIG`:

    issuers:
      - issuer: https://login.example.com/realms/platform   # the exact `iss`
        audience: conveyor                                  # the exact `aud`
        userClaim: email          # default sub
        groupsClaim: groups       # default groups (a list of strings)
        userPrefix: "oidc:"       # default "oidc:"; users are PREFIX + the claim
        jwksUri: https://...      # default: from the issuer's discovery document
        algorithms: [RS256, ES256, EdDSA]
        login:                    # optional: people log in to the pages with this issuer
          clientId: conveyor      # (authorization code + PKCE; web/oidc.py)
          clientSecretEnv: CONVEYOR_OIDC_SECRET   # a confidential client's secret, if any
          scopes: [openid, profile, email, groups]

Time is read through the Clock (PyJWT's own checks read the system time, so they are off
and done here). Every refusal says why and never echoes the token.
"""

from __future__ import annotations

import ipaddress
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from conveyor.clock import Clock
from conveyor.errors import DefinitionError, Problem, Unauthenticated
from conveyor.model.access import Identity
from conveyor.spec import load_paths

CONFIG_ENV = "CONVEYOR_OIDC_CONFIG"
ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA")
REFETCH_AFTER = timedelta(seconds=60)  # an unknown key id refetches the keys at most this often
TIMEOUT = 5.0


class Login(BaseModel):
    """How the pages send people to this issuer to log in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    clientId: str = Field(min_length=1)
    clientSecretEnv: str | None = None
    scopes: tuple[str, ...] = ("openid", "profile", "email")
    authorizationEndpoint: str | None = None  # default: from the discovery document
    tokenEndpoint: str | None = None

    @field_validator("authorizationEndpoint", "tokenEndpoint")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is not None and not _secure(value):
            raise ValueError("use https (plain http only to a loopback address, for tests)")
        return value


class Issuer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    issuer: str = Field(min_length=1)
    audience: str = Field(min_length=1)
    userClaim: str = "sub"
    groupsClaim: str = "groups"
    userPrefix: str = "oidc:"
    jwksUri: str | None = None
    algorithms: tuple[str, ...] = ("RS256", "ES256", "EdDSA")
    login: Login | None = None

    @field_validator("issuer", "jwksUri")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is not None and not _secure(value):
            raise ValueError("use https (plain http only to a loopback address, for tests)")
        return value

    @field_validator("algorithms")
    @classmethod
    def _asymmetric(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # A shared-secret algorithm would let anyone holding the public key sign tokens.
        wrong = [a for a in value if a not in ASYMMETRIC]
        if wrong or not value:
            raise ValueError(f"use public-key algorithms only, from {', '.join(ASYMMETRIC)}")
        return value


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid")
    issuers: list[Issuer] = Field(min_length=1)


def load_issuers(path: Path) -> list[Issuer]:
    """The issuers a config file trusts; DefinitionError with file:line and field if bad."""
    docs = load_paths([path])
    if len(docs) != 1:
        raise DefinitionError(Problem("expected one YAML document with `issuers:`", str(path)))
    doc = docs[0]
    try:
        return _Config.model_validate(doc.data).issuers
    except ValidationError as exc:
        problems = [
            doc.problem(tuple(e["loc"]), e["msg"].removeprefix("Value error, "))
            for e in exc.errors()
        ]
        raise DefinitionError(problems) from None


def issuers_from_env() -> list[Issuer]:
    configured = os.environ.get(CONFIG_ENV)
    return load_issuers(Path(configured)) if configured else []


def _secure(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme == "https":
        return True
    if parts.scheme != "http" or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return False


@dataclass
class _Keys:
    keys: dict[str, jwt.PyJWK] = field(default_factory=dict)
    fetched_at: datetime | None = None  # the last attempt, failed or not
    failure: Unauthenticated | None = None  # why the last attempt failed


class Verifier:
    def __init__(
        self,
        issuers: list[Issuer],
        clock: Clock,
        client: httpx.Client | None = None,
        leeway: timedelta = timedelta(seconds=60),
    ) -> None:
        self.issuers = {i.issuer: i for i in issuers}
        self.clock, self.leeway = clock, leeway
        self.client = client or httpx.Client(timeout=TIMEOUT)
        self._keys: dict[str, _Keys] = {}
        self._lock = threading.Lock()

    def identify(self, token: str, nonce: str | None = None) -> Identity:
        """The user a valid token stands for, with the groups its claim lists. With `nonce`
        (a login's), the token must carry that nonce: it was issued for this login."""
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise Unauthenticated("the bearer token is not a JWT") from None
        issuer = self.issuers.get(str(unverified.get("iss", "")))
        if issuer is None:
            raise Unauthenticated("the bearer token's issuer is not one this server trusts")
        algorithm = header.get("alg")
        if algorithm not in issuer.algorithms:
            raise Unauthenticated(f"the bearer token is signed with {algorithm!r}, not allowed")
        key = self._key(issuer, str(header.get("kid", "")))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[str(algorithm)],
                audience=issuer.audience,
                issuer=issuer.issuer,
                options={
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "require": ["exp", "iss", "aud"],
                },
            )
        except jwt.InvalidAudienceError:
            raise Unauthenticated("the bearer token is for another audience") from None
        except jwt.InvalidSignatureError:
            raise Unauthenticated("the bearer token's signature is not valid") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"the bearer token has no {exc.claim!r} claim") from None
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"the bearer token is not valid: {type(exc).__name__}") from None
        self._check_times(claims)
        if nonce is not None and claims.get("nonce") != nonce:
            raise Unauthenticated("the ID token was not issued for this login (nonce)")
        user = claims.get(issuer.userClaim)
        if not isinstance(user, str) or not user:
            raise Unauthenticated(f"the bearer token has no {issuer.userClaim!r} claim")
        listed = claims.get(issuer.groupsClaim)
        # Only a list of names: anything else in the claim names no group.
        groups = [g for g in listed if isinstance(g, str)] if isinstance(listed, list) else []
        return Identity(issuer.userPrefix + user, frozenset(groups), local=False)

    def _check_times(self, claims: dict[str, Any]) -> None:
        now = self.clock.now().timestamp()
        leeway = self.leeway.total_seconds()
        try:
            exp = float(claims["exp"])
            nbf = float(claims.get("nbf", now))
            iat = float(claims.get("iat", now))
        except (TypeError, ValueError):
            raise Unauthenticated("the bearer token's times are not numbers") from None
        if exp <= now - leeway:
            raise Unauthenticated("the bearer token has expired: log in again")
        if nbf > now + leeway or iat > now + leeway:
            raise Unauthenticated("the bearer token is not valid yet (is a clock wrong?)")

    def _key(self, issuer: Issuer, kid: str) -> jwt.PyJWK:
        with self._lock:
            held = self._keys.setdefault(issuer.issuer, _Keys())
            now = self.clock.now()
            stale = held.fetched_at is None or now - held.fetched_at >= REFETCH_AFTER
            if kid not in held.keys and stale:
                # A new key id: the issuer rotated its keys. Refetch, but not on every
                # request with a made-up kid.
                # A failed attempt counts too: an issuer that is down is not asked again
                # on every request.
                held.fetched_at = now
                try:
                    held.keys, held.failure = self._fetch(issuer), None
                except Unauthenticated as exc:
                    held.failure = exc
            key = held.keys.get(kid)
            if key is None and held.failure is not None:
                raise held.failure
        if key is None:
            raise Unauthenticated("the bearer token is signed with a key its issuer does not list")
        return key

    def endpoints(self, issuer: Issuer) -> tuple[str, str]:
        """The issuer's authorization and token endpoints, for logging in."""
        login = issuer.login
        assert login is not None
        if login.authorizationEndpoint and login.tokenEndpoint:
            return login.authorizationEndpoint, login.tokenEndpoint
        try:
            found = self._get(issuer.issuer.rstrip("/") + "/.well-known/openid-configuration")
            pair = (
                login.authorizationEndpoint or str(found["authorization_endpoint"]),
                login.tokenEndpoint or str(found["token_endpoint"]),
            )
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            raise Unauthenticated(
                f"could not read the login endpoints of {issuer.issuer}: {type(exc).__name__}"
            ) from None
        if not all(_secure(u) for u in pair):
            raise Unauthenticated(f"{issuer.issuer}'s login endpoints are not https")
        return pair

    def _fetch(self, issuer: Issuer) -> dict[str, jwt.PyJWK]:
        try:
            uri = issuer.jwksUri
            if uri is None:
                discovery = issuer.issuer.rstrip("/") + "/.well-known/openid-configuration"
                uri = str(self._get(discovery)["jwks_uri"])
                if not _secure(uri):
                    raise ValueError("its jwks_uri is not https")
            found = jwt.PyJWKSet.from_dict(self._get(uri))
        except (httpx.HTTPError, ValueError, KeyError, TypeError, jwt.PyJWTError) as exc:
            raise Unauthenticated(
                f"could not fetch the signing keys of {issuer.issuer}: {type(exc).__name__}"
            ) from None
        return {str(k.key_id or ""): k for k in found.keys}

    def _get(self, url: str) -> dict[str, Any]:
        response = self.client.get(url, timeout=TIMEOUT)
        response.raise_for_status()
        doc = response.json()
        if not isinstance(doc, dict):
            raise ValueError(f"{url} did not answer a JSON object")
        return doc
