"""One registry seen through one set of credentials: URLs, auth, redirects, statuses.

A request goes out with whatever authorization this session already holds for its scope;
on 401 the challenge is answered (tokens.Authorizer) and the request sent once more.
Credentials and tokens go only to URLs on the registry's own host and port (and to the
token realm the registry names); redirects elsewhere (blob storage, CDNs) are followed by
hand, without an Authorization header.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Iterator, Mapping
from types import TracebackType

import httpx

from conveyor.oci.auth import Credentials
from conveyor.oci.errors import (
    AuthRefused,
    ImageNotFound,
    RegistryProtocolError,
    registry_detail,
    scrub,
)
from conveyor.oci.retry import TRANSIENT_STATUS, Halt, Retryable, retry_after, with_retries
from conveyor.oci.tokens import Authorizer

log = logging.getLogger(__name__)

Body = bytes | Iterator[bytes] | None
REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_HOPS = 5
_DEFAULT_PORT = {"http": 80, "https": 443}


def _shown(url: httpx.URL) -> str:
    # query strings carry upload state and, on some storage backends, signatures
    return str(url.copy_with(query=None, fragment=None))


def _is_tls_failure(error: BaseException) -> bool:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class Session:
    def __init__(
        self,
        registry: str,
        credentials: Credentials | None,
        *,
        insecure: bool,
        timeout: float,
        halt: Halt,
        pool: int = 8,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.registry = registry
        self.halt = halt
        has_creds = credentials is not None and (credentials.username or credentials.password)
        self._insecure = insecure
        self._timeout = timeout
        # trust_env=False: no proxy variables and, above all, no ~/.netrc credentials
        self._client = httpx.Client(
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
            transport=transport,
        )
        self._lock = threading.Lock()
        self._base: str | None = None
        self._authz = Authorizer(
            registry,
            credentials if has_creds else None,
            insecure=insecure,
            client=self._client,
            halt=halt,
            transport_error=self._transport_error,
        )

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._client.close()

    @property
    def base(self) -> str:
        """https://registry, or with `insecure` http:// when https does not answer (what
        docker does for an insecure registry), decided once."""
        with self._lock:
            if self._base is None:
                self._base = f"https://{self.registry}"
                if self._insecure:
                    try:
                        probe = min(self._timeout, 5.0)
                        self._client.get(f"{self._base}/v2/", timeout=probe).close()
                    except httpx.TransportError:
                        self._base = f"http://{self.registry}"
            return self._base

    def url(self, path: str) -> str:
        return self.base + path

    def scrub(self, text: str) -> str:
        return scrub(text, self._authz.secrets())

    def request(
        self,
        method: str,
        url: str,
        *,
        hint: str,
        what: str,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        follow: bool = False,
    ) -> httpx.Response:
        """`send` with retries (the body is bytes, so it can be sent again)."""
        return with_retries(
            lambda: self.send(
                method, url, hint=hint, what=what, headers=headers, content=content, follow=follow
            ),
            self.halt,
            what,
        )

    def send(
        self,
        method: str,
        url: str,
        *,
        hint: str,
        what: str,
        headers: Mapping[str, str] | None = None,
        content: Body = None,
        stream: bool = False,
        follow: bool = False,
    ) -> httpx.Response:
        """One attempt (plus one re-send after authenticating). Transient statuses and
        network errors raise Retryable; any other status is returned for `expect`.
        `hint` names the access wanted (e.g. "repository:team/web:pull"): requests with the
        same hint reuse the authorization the first one earned."""
        replayable = content is None or isinstance(content, bytes)
        for again in (False, True):
            sent = self._authz.header_for(hint)
            response = self._hops(method, url, headers, content, sent, stream, follow, what)
            if response.status_code != 401 or again:
                break
            challenge = response.headers.get("WWW-Authenticate", "")
            response.close()
            self._authz.answer(challenge, hint, sent, what)
            if not replayable:
                raise Retryable("authorization was renewed; the body must be sent again")
        if response.status_code in TRANSIENT_STATUS:
            wait = retry_after(response)
            response.close()
            raise Retryable(f"HTTP {response.status_code}", wait)
        return response

    def expect(self, response: httpx.Response, what: str, ok: tuple[int, ...] = (200,)) -> None:
        """Raise the error a non-`ok` status means (closing the response)."""
        code = response.status_code
        if code in ok:
            return
        body = b""
        try:
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > 65536:
                    break
        except httpx.TransportError:
            pass  # the status alone still says what happened
        finally:
            response.close()
        detail = registry_detail(body)
        suffix = self.scrub(f" ({detail})") if detail else ""
        if code in (401, 403):
            who = "the credentials" if self._authz.credentials else "anonymous access"
            raise AuthRefused(f"{what}: {self.registry} refused {who} (HTTP {code}){suffix}")
        if code == 404:
            raise ImageNotFound(f"{what}: not found (HTTP 404){suffix}")
        raise RegistryProtocolError(f"{what}: unexpected HTTP {code}{suffix}")

    def _hops(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        content: Body,
        auth: str | None,
        stream: bool,
        follow: bool,
        what: str,
    ) -> httpx.Response:
        target = httpx.URL(url)
        for _ in range(MAX_HOPS + 1):
            sendable = dict(headers or {})
            own = self._vet(target)  # first: it refuses http even when no auth would go
            if auth is not None and own:
                sendable["Authorization"] = auth
            request = self._client.build_request(method, target, headers=sendable, content=content)
            try:
                response = self._client.send(request, stream=stream)
            except httpx.TransportError as e:
                raise self._transport_error(e, what) from None
            log.debug("%s %s -> %d", method, _shown(target), response.status_code)
            location = response.headers.get("Location")
            if not (follow and response.status_code in REDIRECTS and location):
                return response
            response.close()
            target = response.url.join(location)
        raise RegistryProtocolError(f"{what}: more than {MAX_HOPS} redirects")

    def _vet(self, url: httpx.URL) -> bool:
        """Refuse what `insecure` forbids; True when `url` is on this registry (and so may
        carry its authorization)."""
        if url.scheme not in _DEFAULT_PORT:
            raise RegistryProtocolError(f"{self.registry} sent a non-http URL ({url.scheme}:)")
        if url.scheme == "http" and not self._insecure:
            raise RegistryProtocolError(
                f"refusing plain-http URL {_shown(url)} for {self.registry}: https is required "
                "(insecure=True allows http, for test registries only)"
            )
        own = httpx.URL(self.base)
        return url.host == own.host and (url.port or _DEFAULT_PORT[url.scheme]) == (
            own.port or _DEFAULT_PORT[own.scheme]
        )

    def _transport_error(self, error: httpx.TransportError, what: str) -> Exception:
        text = self.scrub(f"{type(error).__name__}: {error}")
        if _is_tls_failure(error):
            hint = " (a plain-http registry needs insecure=True)" if not self._insecure else ""
            return RegistryProtocolError(f"{what}: TLS with {self.registry} failed: {text}{hint}")
        if isinstance(error, httpx.UnsupportedProtocol):
            return RegistryProtocolError(f"{what}: {text}")
        return Retryable(text)
