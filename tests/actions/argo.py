"""A small Argo CD look-alike on 127.0.0.1 for the `http` action's tests: syncs, then
OutOfSync/Progressing answers until an application is Synced and Healthy."""

from __future__ import annotations

import json
import re
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from conveyor.clock import ManualClock

TOKEN = "s3cr3t-argo-token-7f9c"
APP = re.compile(r"^/api/v1/applications/([\w.-]+)(/sync)?$")


class Argo:
    """What the fake server knows: syncs started, GETs since, failures still to serve."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.ready_after = 3  # Synced from the 3rd GET after a sync, Healthy from the 4th
        self.fail_next = 0  # answer this many requests with 500 first
        self.gets: dict[str, int] = {}  # app -> GETs since its sync
        self.requests: list[tuple[str, str]] = []
        self.get_times: list[datetime] = []  # the engine clock at each GET
        self.lock = threading.Lock()

    def app(self, name: str) -> dict[str, Any]:
        gets = self.gets.get(name, 0)
        synced = gets >= self.ready_after
        healthy = gets >= self.ready_after + 1
        return {
            "metadata": {"name": name},
            "status": {
                "sync": {"status": "Synced" if synced else "OutOfSync"},
                "health": {"status": "Healthy" if healthy else "Progressing"},
                "resources": [{"kind": "Deployment", "name": "web"}],
            },
        }


class Handler(BaseHTTPRequestHandler):
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        argo = self.server.argo
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        auth = self.headers.get("Authorization", "")
        with argo.lock:
            argo.requests.append((method, self.path))
            match = APP.match(self.path)
            if match is None or (method == "POST") != bool(match.group(2)):
                return self._send(404, {"error": "not found"})
            if auth != f"Bearer {TOKEN}":  # echoes what it got, as careless servers do
                return self._send(401, {"error": f"invalid session: {auth!r}", "code": 16})
            if argo.fail_next:
                argo.fail_next -= 1
                return self._send(500, {"error": "etcdserver: request timed out"})
            name = match.group(1)
            if method == "POST":
                argo.gets[name] = 0
                return self._send(200, {**argo.app(name), "debug": {"authorization": auth}})
            if name in argo.gets:
                argo.gets[name] += 1
            argo.get_times.append(argo.clock.now())
            return self._send(200, argo.app(name))

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, argo: Argo) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.argo = argo

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/api/v1/applications"
