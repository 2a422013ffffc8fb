"""A small HTTP server on 127.0.0.1 whose answers a test sets per path (health probes)."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


class Handler(BaseHTTPRequestHandler):
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        code, body = self.server.routes.get(path, (404, b"no such path"))
        # Counted before answering: a test reads the counts as soon as the answer is stored.
        with self.server.lock:
            self.server.auth.append(self.headers.get("Authorization", ""))
            self.server.hits[path] += 1
            if sum(self.server.hits.values()) >= self.server.target:
                self.server.reached.set()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.routes: dict[str, tuple[int, bytes]] = {}
        self.hits: Counter[str] = Counter()
        self.auth: list[str] = []
        self.lock = threading.Lock()
        self.target = 1_000_000
        self.reached = threading.Event()

    def route(self, path: str, code: int, body: bytes | dict[str, Any] = b"") -> str:
        self.routes[path] = (code, json.dumps(body).encode() if isinstance(body, dict) else body)
        return self.url(path)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    srv = Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)
