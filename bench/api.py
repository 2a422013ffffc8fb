"""The REST API under load: C concurrent clients (default 50) on loopback for D seconds
(default 20) against `conveyor serve` on a SQLite file, each alternating a read of the
release list and a batch of B health reports (default 1,000, every one a new node, so each
must be stored once: the worst case, a node's first report costs a second insert). A
reporter agent flushes what it gathered every second or so; `--batch 100` shows smaller
batches, which pay the per-request costs (auth, a transaction) ten times as often.

Figures: requests per second, p50 and p99 latency over every request, errors (any answer
but 200/201, or a transport error; goal 0), and reports stored against reports accepted
(goal: all) with the rate they were stored at. The issue's goal for the batch path is
20,000 reports/s.

    .venv/bin/python bench/api.py [--clients 50] [--seconds 20] [--batch 1000]
        [--postgresql [--servers 2]]

With --postgresql the store is a throwaway PostgreSQL server (the tests'), and --servers N
puts N API processes on it (the first with the engine), the clients spread over them.
2026-12-04, `--postgresql --servers 2`: 9,000 reports/s, 0 errors, every report stored
once (1,400/s with client timeouts before node lookups went through one array parameter).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa

from conveyor.engine.service import Conveyor
from conveyor.model.access import Role, Scope
from conveyor.spec import load_text
from conveyor.store.auditkeys import AuditKeys
from conveyor.store.db import open_store

DEFS = """
apiVersion: conveyor.dev/v1
kind: Product
metadata: {name: shop}
spec:
  artifacts: [{name: web, type: image, repository: registry.local/web}]
---
apiVersion: conveyor.dev/v1
kind: Environment
metadata: {name: dev}
spec: {type: non-production}
"""
DIGEST = "sha256:" + "ab" * 32
PREPARED = 30  # batch bodies encoded ahead for each client
JSON = {"Content-Type": "application/json"}


def prepare(url: str, root: Path) -> str:
    """The store at `url` with 20 releases and a loader's token."""
    cv = Conveyor(open_store(url, audit_keys=AuditKeys(root / "audit")), actor="local:bench")
    cv.claim()
    cv.apply(docs=load_text(DEFS, "bench.yaml"))
    for n in range(20):
        cv.create_release("shop", f"1.0.{n}", {"web": f"registry.local/web@{DIGEST}"})
    cv.add_user("loader", [])
    cv.grant("user:loader", Role.PROMOTER, Scope())
    cv.grant("user:loader", Role.REPORTER, Scope())
    token = cv.create_token("loader", timedelta(days=1))[1]
    cv.close()
    return token


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(url: str, root: Path, port: int, engine: bool) -> subprocess.Popen[bytes]:
    exe = str(Path(sys.executable).parent / "conveyor")
    mode = [] if engine else ["--no-engine"]
    proc = subprocess.Popen(
        [exe, "--db", url, "serve", "--port", str(port), *mode],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "CONVEYOR_AUDIT_DIR": str(root / "audit")},
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", trust_env=False).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("conveyor serve did not start")


async def load(
    urls: list[str], token: str, clients: int, seconds: float, batch: int
) -> tuple[list[float], int, int, float]:
    latencies: list[float] = []
    errors = 0
    accepted = 0

    def batch_body(n: int, sent: int) -> bytes:
        reports = [
            {
                "environment": "dev",
                "entity": "web",
                "node": f"c{n}-{sent}-{i}",
                "version": "1.0.0",
                "state": "HEALTHY",
            }
            for i in range(batch)
        ]
        return json.dumps({"reports": reports}).encode()

    # The bodies are encoded before the clock starts: the figures are the server's, not
    # the cost of this Python client building JSON (it shares the machine's two cores).
    ready = {n: [batch_body(n, k) for k in range(1, PREPARED * 2, 2)] for n in range(clients)}
    stop_at = time.monotonic() + seconds

    async def client(n: int, http: httpx.AsyncClient) -> None:
        nonlocal errors, accepted
        sent = 0
        while time.monotonic() < stop_at:
            if sent % 2 == 0:
                request = http.get("/api/v1/releases")
            else:
                body = ready[n].pop(0) if ready[n] else batch_body(n, sent)
                request = http.post("/api/v1/health/reports", content=body, headers=JSON)
            began = time.perf_counter()
            try:
                answer = await request
                ok = answer.status_code in (200, 201)
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - began)
            if not ok:
                errors += 1
            elif sent % 2 == 1:
                accepted += batch
            sent += 1

    limits = httpx.Limits(max_connections=clients)
    headers = {"Authorization": f"Bearer {token}"}
    https = [
        httpx.AsyncClient(base_url=u, headers=headers, limits=limits, timeout=60, trust_env=False)
        for u in urls
    ]
    began = time.perf_counter()
    await asyncio.gather(*(client(n, https[n % len(https)]) for n in range(clients)))
    elapsed = time.perf_counter() - began
    for http in https:
        await http.aclose()
    return latencies, errors, accepted, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument(
        "--postgresql", action="store_true", help="a throwaway PostgreSQL, not a SQLite file"
    )
    parser.add_argument("--servers", type=int, default=1, help="API processes on the store")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="conveyor-bench-")))
        if args.postgresql:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
            from tests.pg import postgres_server  # the tests' throwaway server

            url = stack.enter_context(postgres_server()).database()
        else:
            url = f"sqlite:///{root / 'conveyor.db'}"
        token = prepare(url, root)
        ports = [free_port() for _ in range(args.servers)]
        servers = [start(url, root, port, engine=i == 0) for i, port in enumerate(ports)]
        try:
            latencies, errors, accepted, elapsed = asyncio.run(
                load(
                    [f"http://127.0.0.1:{p}" for p in ports],
                    token,
                    args.clients,
                    args.seconds,
                    args.batch,
                )
            )
        finally:
            for server in servers:
                server.terminate()
                server.wait(30)
        engine = sa.create_engine(url)
        with engine.connect() as con:
            stored = con.execute(sa.text("select count(*) from health_reports")).scalar_one()
        engine.dispose()
    ordered = sorted(latencies)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    rps = len(latencies) / elapsed
    per_s = stored / elapsed
    print(f"{len(latencies)} requests from {args.clients} clients in {elapsed:.1f} s: {rps:.0f}/s")
    print(f"  latency p50 {p50:.1f} ms, p99 {p99:.1f} ms; errors {errors} (goal 0)")
    print(
        f"  reports accepted {accepted}, stored {stored} (goal: all): {per_s:.0f}/s (goal 20,000/s)"
    )
    database = "postgresql" if args.postgresql else "sqlite"
    print(
        f"RESULT rps={rps:.0f} p50_ms={p50:.1f} p99_ms={p99:.1f} errors={errors} "
        f"reports_per_s={per_s:.0f} accepted={accepted} stored={stored} "
        f"database={database} servers={args.servers}"
    )


if __name__ == "__main__":
    main()
