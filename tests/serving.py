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
    db: Path, cwd: Path, *options: str, env: Mapping[str, str] | None = None
) -> Iterator[str]:
    """Serve `db` from `cwd` (where its tasks run) until the block ends; yields the URL."""
    port = free_port()
    exe = str(Path(sys.executable).parent / "conveyor")
    proc = subprocess.Popen(
        [exe, "--db", str(db), "serve", "--port", str(port), *options],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
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
                raise RuntimeError(f"conveyor serve did not start: {proc.communicate()[1]!r}")
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
