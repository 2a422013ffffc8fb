"""`conveyor serve` in a process of its own, on a free loopback port, for the tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.gitrepos import free_port


@contextmanager
def serving(
    db: Path | str,
    cwd: Path,
    *options: str,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
) -> Iterator[str]:
    """Serve `db` (a SQLite file or a URL) from `cwd`, where its tasks run, until the block
    ends; yields the URL. What it prints goes to `log` (default: cwd/serve.log): a pipe
    nobody reads would stop a chatty server."""
    port = free_port()
    exe = str(Path(sys.executable).parent / "conveyor")
    log = log or cwd / "serve.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [exe, "--db", str(db), "serve", "--port", str(port), *options],
            cwd=cwd,
            stdout=out,
            stderr=out,
            env={**os.environ, **(env or {})},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait(10)
                raise RuntimeError(f"conveyor serve did not start: {log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            raise
