"""`conveyor serve` in a process of its own, on a free loopback port, and `conveyor engine`
processes, for the tests."""

from __future__ import annotations

import os
import signal
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


class Engines:
    """`conveyor engine` processes on one store, started, killed and stopped by the test."""

    def __init__(self, url: str, cwd: Path, env: dict[str, str]) -> None:
        self.url, self.cwd, self.env = url, cwd, env
        self.procs: list[subprocess.Popen[bytes]] = []
        self.log = cwd / "engines.log"

    def start(self) -> subprocess.Popen[bytes]:
        exe = str(Path(sys.executable).parent / "conveyor")
        with self.log.open("ab") as out:
            proc = subprocess.Popen(
                [exe, "--db", self.url, "engine"],
                cwd=self.cwd,
                stdout=out,
                stderr=out,
                env={**os.environ, **self.env},
            )
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        self.procs.remove(proc)

    def stop(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            proc.wait(30)
        self.procs.clear()
