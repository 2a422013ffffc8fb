"""A registry behind a proxy that misbehaves on purpose (fails, corrupts, demands
tokens that expire), for copy_image's tests."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "content-length"}
# no compression: the proxy relays bodies as bytes and may rewrite them
_DROP_REQUEST = _HOP | {"accept-encoding"}


Answer = tuple[int, dict[str, str], bytes]
Intercept = Callable[[str, str, Mapping[str, str]], Answer | None]


def fail(status: int) -> Answer:
    return status, {}, b""


class Proxy:
    """127.0.0.1 in front of a real registry: forwards every request with httpx (keeping
    the Host header, so the registry's upload Locations point back at the proxy), unless
    `intercept(method, path, headers)` returns an answer to give instead;
    `mangle(method, path, body)` may rewrite response bodies."""

    def __init__(
        self,
        upstream: str,
        intercept: Intercept = lambda m, p, h: None,
        mangle: Callable[[str, str, bytes], bytes] = lambda m, p, b: b,
    ) -> None:
        self.upstream, self.intercept, self.mangle = upstream, intercept, mangle
        self.client = httpx.Client(trust_env=False, timeout=30.0)
        self.requests: list[tuple[str, str, int]] = []
        self.closing = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                answer = proxy.intercept(self.command, self.path, dict(self.headers.items()))
                if answer is not None:
                    status, extra, content = answer
                    proxy.requests.append((self.command, self.path, status))
                    self.send_response(status)
                    for key, value in extra.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(content)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(content)
                    return
                headers = [
                    (k, v) for k, v in self.headers.items() if k.lower() not in _DROP_REQUEST
                ]
                upstream = proxy.client.request(
                    self.command,
                    f"http://{proxy.upstream}{self.path}",
                    headers=headers,
                    content=body,
                )
                proxy.requests.append((self.command, self.path, upstream.status_code))
                data = proxy.mangle(self.command, self.path, upstream.content)
                self.send_response(upstream.status_code)
                for key, value in upstream.headers.multi_items():
                    if key.lower() not in _HOP:
                        self.send_header(key, value)
                if self.command == "HEAD":
                    self.send_header("Content-Length", upstream.headers.get("Content-Length", "0"))
                    self.end_headers()
                    return
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def quietly(self) -> None:
                # a client that gave up (timeout test) or a proxy shutting down is expected
                try:
                    self.relay()
                except (OSError, RuntimeError, httpx.HTTPError):
                    self.close_connection = True

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = quietly

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Proxy:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()
        self.client.close()


class TokenGate:
    """Distribution-style token auth in front of a registry: /token trades basic
    credentials for a token that is good for `uses` requests (so tokens expire mid-copy)."""

    def __init__(self, user: str, password: str, uses: int) -> None:
        self.basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.uses = uses
        self.left: dict[str, int] = {}
        self.issued = 0
        self.realm = ""
        self.registry_auth: list[str] = []
        self.token_scopes: list[str] = []

    def __call__(self, method: str, path: str, headers: Mapping[str, str]) -> Answer | None:
        auth = headers.get("Authorization", "")
        if path.startswith("/token"):
            self.token_scopes += httpx.URL(path).params.get_list("scope")
            if auth != self.basic:
                return fail(401)
            self.issued += 1
            token = f"token-{self.issued}"
            self.left[token] = self.uses
            return 200, {"Content-Type": "application/json"}, json.dumps({"token": token}).encode()
        self.registry_auth.append(auth)
        token = auth.removeprefix("Bearer ")
        if self.left.get(token, 0) > 0:
            self.left[token] -= 1
            return None
        name = path.removeprefix("/v2/").split("/blobs/")[0].split("/manifests/")[0]
        challenge = (
            f'Bearer realm="{self.realm}",service="test",scope="repository:{name}:pull,push"'
        )
        return 401, {"WWW-Authenticate": challenge}, b'{"errors":[{"code":"UNAUTHORIZED"}]}'
