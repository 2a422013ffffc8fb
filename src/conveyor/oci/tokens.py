"""Answering a registry's 401: `WWW-Authenticate` challenges (RFC 7235) and the
distribution token protocol.

Distribution challenges with `Bearer realm="https://auth/token",service="registry",
scope="repository:team/web:pull"` (token auth) or `Basic realm="..."` (htpasswd). For
Bearer we GET the realm with the service and scopes (and the credentials, as basic auth,
when there are any) and use the token it returns; tokens are cached per (realm, service,
scope). The realm is the only host other than the registry that sees the credentials:
the registry named it, exactly as docker and skopeo trust it to.
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from conveyor.oci.auth import Credentials
from conveyor.oci.errors import AuthRefused, RegistryProtocolError
from conveyor.oci.retry import TRANSIENT_STATUS, Halt, Retryable, retry_after, with_retries

# a scheme or parameter name, optionally followed by `= value` (quoted or not)
_ITEM = re.compile(r'\s*,?\s*([A-Za-z0-9!#$%&\'*+.^_`|~-]+)(?:\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]*))?')


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lowercased: "bearer", "basic"
    params: dict[str, str] = field(default_factory=dict)  # names lowercased


def parse_challenges(header: str) -> list[Challenge]:
    """Every challenge in a `WWW-Authenticate` value. A header may hold several, so it is
    tokenised rather than split on commas; an unparseable tail is ignored (a registry's
    odd header should mean "no usable challenge", not a crash)."""
    challenges: list[Challenge] = []
    pos = 0
    while pos < len(header):
        m = _ITEM.match(header, pos)
        if m is None or m.end() == pos:
            break
        pos = m.end()
        name, value = m.group(1), m.group(2)
        if value is None:
            challenges.append(Challenge(name.lower()))
        elif challenges:
            if value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            challenges[-1].params[name.lower()] = value
    return challenges


class Authorizer:
    """The Authorization values one registry session has earned, by scope hint."""

    def __init__(
        self,
        registry: str,
        credentials: Credentials | None,
        *,
        insecure: bool,
        client: httpx.Client,
        halt: Halt,
        transport_error: Callable[[httpx.TransportError, str], Exception],
    ) -> None:
        self.registry = registry
        self.credentials = credentials
        self._insecure = insecure
        self._client = client
        self._halt = halt
        self._transport_error = transport_error
        self._lock = threading.Lock()
        self._tokens: dict[str, str] = {}
        self._by_hint: dict[str, str] = {}
        self._basic = False

    def secrets(self) -> list[str | None]:
        password = self.credentials.password if self.credentials else None
        return [password, self.basic(), *self._tokens.values()]

    def basic(self) -> str | None:
        if self.credentials is None:
            return None
        pair = f"{self.credentials.username or ''}:{self.credentials.password or ''}"
        return "Basic " + base64.b64encode(pair.encode()).decode()

    def header_for(self, hint: str) -> str | None:
        return self.basic() if self._basic else self._by_hint.get(hint)

    def answer(self, header: str, hint: str, sent: str | None, what: str) -> None:
        """Earn authorization for `hint` from a 401's challenge; AuthRefused if we cannot."""
        challenges = parse_challenges(header)
        bearer = next((c for c in challenges if c.scheme == "bearer"), None)
        if bearer is None:
            if not any(c.scheme == "basic" for c in challenges):
                raise AuthRefused(f"{what}: {self.registry} answered 401 with no usable challenge")
            if self.credentials is None:
                raise AuthRefused(f"{what}: {self.registry} requires credentials")
            self._basic = True
            return
        realm = bearer.params.get("realm")
        if not realm:
            raise RegistryProtocolError(f"{what}: {self.registry}'s bearer challenge has no realm")
        service, scope = bearer.params.get("service", ""), bearer.params.get("scope", "")
        key = f"{realm} {service} {scope}"
        with self._lock:
            token = self._tokens.get(key)
            # a cached token that was just refused has expired: fetch a new one
            if token is None or f"Bearer {token}" == sent:
                token = self._fetch(realm, service, scope, what)
                self._tokens[key] = token
            self._by_hint[hint] = f"Bearer {token}"

    def _fetch(self, realm: str, service: str, scope: str, what: str) -> str:
        url = httpx.URL(realm)
        if url.scheme != "https" and not (url.scheme == "http" and self._insecure):
            shown = url.copy_with(query=None)
            raise RegistryProtocolError(f"{what}: refusing token realm {shown}: not https")
        params: list[tuple[str, str | int | float | bool | None]] = []
        if service:
            params.append(("service", service))
        params += [("scope", s) for s in scope.split()]
        if self.credentials is not None and self.credentials.username:
            params.append(("account", self.credentials.username))
        basic = self.basic()
        headers = {"Authorization": basic} if basic else {}

        def attempt() -> httpx.Response:
            try:
                response = self._client.get(url, params=params, headers=headers)
            except httpx.TransportError as e:
                raise self._transport_error(e, what) from None
            if response.status_code in TRANSIENT_STATUS:
                raise Retryable(f"token service HTTP {response.status_code}", retry_after(response))
            return response

        response = with_retries(attempt, self._halt, f"{what}: token")
        if response.status_code in (401, 403):
            who = "the credentials" if self.credentials else "anonymous access"
            raise AuthRefused(f"{what}: the token service of {self.registry} refused {who}")
        token = None
        if response.status_code == 200:
            try:
                doc = response.json()
            except ValueError:
                doc = None
            if isinstance(doc, dict):
                token = doc.get("token") or doc.get("access_token")
        if not isinstance(token, str) or not token:
            raise RegistryProtocolError(
                f"{what}: the token service of {self.registry} answered HTTP "
                f"{response.status_code} without a token"
            )
        return token
