"""An https token reaches the server in a header, and nowhere else: not in git's command
line, not in errors, not in task output or the audit log."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conveyor.actions.base import ActionContext
from conveyor.actions.gitrepo import GitSettings, commit_and_push
from conveyor.errors import ConveyorError

TOKEN = "s3cr3t-token-do-not-print"


@pytest.fixture
def server() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization", ""))
            body = f"no repository here (you sent {self.headers.get('Authorization')})".encode()
            self.send_response(500)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/ops.git", seen
    finally:
        httpd.shutdown()
        thread.join(timeout=5)


def test_token_is_sent_as_a_header_and_scrubbed_from_errors(
    tmp_path: Path, server: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, seen = server
    monkeypatch.setenv("OPS_TOKEN", TOKEN)
    ctx = ActionContext(
        raw={},
        template={"release": {"product": "p", "version": "1.0.0"}},
        workdir=tmp_path,
        timeout_s=30,
        data_dir=tmp_path / "data",
    )
    settings = GitSettings(repo=url, tokenEnv="OPS_TOKEN")
    with pytest.raises(ConveyorError) as failure:
        commit_and_push(ctx, settings, lambda root: [], "write")
    basic = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    assert f"Basic {basic}" in seen, "git sent the token to the server"
    assert TOKEN not in str(failure.value) and basic not in str(failure.value)


def test_missing_token_variable_is_a_clear_error(tmp_path: Path) -> None:
    ctx = ActionContext(
        raw={}, template={}, workdir=tmp_path, timeout_s=30, data_dir=tmp_path / "data"
    )
    settings = GitSettings(repo="https://127.0.0.1:1/x.git", tokenEnv="NO_SUCH_VARIABLE_HERE")
    with pytest.raises(ConveyorError, match="NO_SUCH_VARIABLE_HERE"):
        commit_and_push(ctx, settings, lambda root: [], "write")
