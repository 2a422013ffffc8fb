"""One `conveyor serve` per test session, on loopback, over a store prepared for it: users
with roles and their API tokens."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from conveyor.engine.service import Conveyor
from conveyor.model.access import Role, Scope
from conveyor.store.db import open_store
from tests.conftest import BASE, apply_yaml, shop_flow
from tests.serving import serving

FLOW = (
    shop_flow("qa")
    + """
---
apiVersion: conveyor.dev/v1
kind: PromotionPolicy
metadata: {name: qa-approval}
spec:
  selector: {environments: {names: [qa]}}
  gates: [{approval: {require: [{group: qa-leads}]}}]
"""
)

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
    with serving(db, root) as url:
        yield Api(url, tokens, db)
