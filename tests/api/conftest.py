"""One `conveyor serve` per test session, on loopback, over a store prepared for it: users
with roles and their API tokens."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from conveyor.engine.service import Conveyor
from conveyor.model.access import Role, Scope
from conveyor.store.db import open_store
from tests.conftest import BASE, apply_yaml

FLOW = """
---
apiVersion: conveyor.dev/v1
kind: PromotionFlow
metadata: {name: main}
spec:
  version: "1.00"
  product: shop
  triggerEnvironment: dev
  environments: [{name: qa, dependsOn: [dev]}]
---
apiVersion: conveyor.dev/v1
kind: PromotionPolicy
metadata: {name: all}
spec:
  workflow:
    steps:
      - name: deploy
        tasks: [{name: ok, uses: run, with: {args: ["true"]}}]
---
apiVersion: conveyor.dev/v1
kind: PromotionPolicy
metadata: {name: qa-approval}
spec:
  selector: {environments: {names: [qa]}}
  gates: [{approval: {require: [{group: qa-leads}]}}]
"""

# Who the tests act as, and their grants.
PEOPLE: dict[str, list[tuple[Role, Scope]]] = {
    "root": [(Role.ADMIN, Scope())],
    "ci": [(Role.PROMOTER, Scope())],
    "ada": [(Role.APPROVER, Scope(names=("qa",)))],
    "probe": [(Role.REPORTER, Scope(names=("dev",)))],
    "nobody": [],
}


@dataclass
class Api:
    url: str
    tokens: dict[str, str]
    db: Path

    def client(self, who: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return httpx.Client(base_url=self.url, headers=headers, trust_env=False, timeout=30)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    root = tmp_path_factory.mktemp("serve")
    db = root / "conveyor.db"
    cv = Conveyor(open_store(f"sqlite:///{db}"), actor="local:setup", workdir=root)
    cv.claim()
    apply_yaml(cv, BASE + FLOW)
    tokens = {}
    for name, grants in PEOPLE.items():
        cv.add_user(name, ["qa-leads"] if name == "ada" else [])
        for role, scope in grants:
            cv.grant(f"user:{name}", role, scope)
        tokens[name] = cv.create_token(name, timedelta(days=1))[1]
    cv.close()
    port = free_port()
    exe = str(Path(sys.executable).parent / "conveyor")
    proc = subprocess.Popen(
        [exe, "--db", str(db), "serve", "--port", str(port)],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
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
    yield Api(url, tokens, db)
    proc.terminate()
    proc.wait(30)
