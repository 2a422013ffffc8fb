"""Shared fixtures: a real SQLite file store, the controllable clock, a Conveyor facade."""

from __future__ import annotations

import getpass
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.clock import ManualClock
from conveyor.engine.service import Conveyor
from conveyor.oci.local import registry
from conveyor.spec import load_text
from conveyor.store.auditkeys import AuditKeys
from conveyor.store.db import open_store
from tests.httpserver import server  # noqa: F401 (a fixture, shared)
from tests.pg import Postgres, postgres_server
from tests.webhooks import receiver  # noqa: F401 (a fixture, shared)


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registry retries without their real backoff (the schedule is tested on its own)."""
    monkeypatch.setattr("conveyor.oci.retry.FIRST_DELAY", 0.01)


@pytest.fixture
def dev(tmp_path: Path, quick_retries: None) -> Iterator[str]:
    """A loopback registry for the lower stages (fast-feedback, extended-test)."""
    with registry(tmp_path / "registry-dev") as host:
        yield host


@pytest.fixture
def prod(tmp_path: Path, quick_retries: None) -> Iterator[str]:
    """A second loopback registry, for production."""
    with registry(tmp_path / "registry-prod") as host:
        yield host


# Who the CLI acts as in tests: the operating-system user.
ME = f"local:{getpass.getuser()}"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(scope="session")
def pg() -> Iterator[Postgres]:
    """The session's PostgreSQL server, started on first use."""
    with postgres_server() as started:
        yield started


# The databases the store-touching tests run on (CONVEYOR_TEST_BACKENDS=sqlite for a quick
# run); `make test` runs them on both.
BACKENDS = os.environ.get("CONVEYOR_TEST_BACKENDS", "sqlite,postgresql").split(",")


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        postgres: Postgres = request.getfixturevalue("pg")
        return postgres.database()
    return f"sqlite:///{tmp_path / 'conveyor.db'}"


@pytest.fixture
def cv(tmp_path: Path, clock: ManualClock, store_url: str) -> Iterator[Conveyor]:
    work = tmp_path / "work"
    work.mkdir()
    keys = AuditKeys(tmp_path / "conveyor.db.audit")  # each test's own, whatever the database
    c = Conveyor(open_store(store_url, audit_keys=keys), clock=clock, actor="tester", workdir=work)
    yield c
    c.close()


def reopen(cv: Conveyor, clock: ManualClock) -> Conveyor:
    """The same database and audit keys in a new Conveyor: another process, or a restart."""
    url = cv.store.engine.url.render_as_string(hide_password=False)
    keys = AuditKeys(cv.store.audit_keys.directory)
    store = open_store(url, audit_keys=keys)
    return Conveyor(store, clock=clock, actor="tester", workdir=cv.workdir)


def dump_store(cv: Conveyor) -> str:
    """Every row of every table, as text: to look for what must never be stored."""
    from sqlalchemy import select

    from conveyor.store.tables import Base

    with cv.store.session() as s:
        rows = [row for table in Base.metadata.sorted_tables for row in s.execute(select(table))]
    return "\n".join(str(tuple(row)) for row in rows)


def shop_flow(*chain: str, name: str = "main") -> str:
    """A flow for shop from dev through `chain`, each environment after the one before,
    and a policy `all` whose workflow runs `true`: the flow most tests need."""
    parents = ("dev", *chain)
    environments = ", ".join(
        f"{{name: {e}, dependsOn: [{parents[i]}]}}" for i, e in enumerate(chain)
    )
    return f"""
---
apiVersion: conveyor.dev/v1
kind: PromotionFlow
metadata: {{name: {name}}}
spec:
  version: "1.00"
  product: shop
  triggerEnvironment: dev
  environments: [{environments}]
---
apiVersion: conveyor.dev/v1
kind: PromotionPolicy
metadata: {{name: all}}
spec:
  workflow:
    steps:
      - name: deploy
        tasks: [{{name: ok, uses: run, with: {{args: ["true"]}}}}]
"""


def apply_yaml(cv: Conveyor, text: str, file: str = "test.yaml") -> None:
    cv.apply(docs=load_text(textwrap.dedent(text), file))


BASE = """
apiVersion: conveyor.dev/v1
kind: Product
metadata: {name: shop}
spec:
  artifacts:
    - {name: web, type: image, repository: registry.local/web}
---
apiVersion: conveyor.dev/v1
kind: Environment
metadata: {name: dev, labels: {tier: dev}}
spec: {type: non-production}
---
apiVersion: conveyor.dev/v1
kind: Environment
metadata: {name: qa, labels: {tier: qa}}
spec: {type: non-production}
---
apiVersion: conveyor.dev/v1
kind: Environment
metadata: {name: prod, labels: {tier: prod, region: us}}
spec: {type: production, settings: {overlay: overlays/prod}}
---
apiVersion: conveyor.dev/v1
kind: Environment
metadata: {name: prod-eu, labels: {tier: prod, region: eu}}
spec: {type: production}
---
apiVersion: conveyor.dev/v1
kind: Environment
metadata: {name: prod-asia, labels: {tier: prod, region: asia}}
spec: {type: production}
"""

DIGEST = "sha256:" + "a" * 64


def digest(n: int) -> str:
    return "sha256:" + f"{n:x}".rjust(64, "0")
