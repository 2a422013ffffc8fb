"""`conveyor engine --metrics-port`: /metrics over HTTP for Prometheus to scrape.

Each scrape reads the figures from the store (engine/metrics.py), so every engine and
every process on the database reports the same numbers."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def serve_metrics(render: Callable[[], str], host: str, port: int) -> ThreadingHTTPServer:
    """Serve `render()` at /metrics on host:port (0: any free port) from a daemon thread;
    the caller shuts the server down."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/metrics":
                self.send_error(404, "only /metrics is served here")
                return
            try:
                body = render().encode()
            except Exception as exc:  # a scrape must answer, not kill the thread
                self.send_error(503, f"cannot read the store: {type(exc).__name__}")
                return
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return  # one line per scrape is noise

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
