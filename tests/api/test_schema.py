"""Schemathesis against the OpenAPI the server publishes: no request built from the schema,
valid or not, gets a 500 (issue 12). Runs in process (ASGI), on a store of its own, as an
admin, so that every route is reached past its role check."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from conveyor.api.app import Server, create_app
from conveyor.clock import SystemClock
from conveyor.engine.registry import default_registry
from conveyor.engine.service import Conveyor
from conveyor.model.access import Role, Scope
from conveyor.store.db import open_store
from tests.api.conftest import FLOW
from tests.conftest import BASE, DIGEST, apply_yaml

# The schema is read when the module is collected (schemathesis parametrizes from it), so
# the store is made then too; the fixture below removes it after the module's tests.
ROOT = Path(tempfile.mkdtemp(prefix="conveyor-schema-"))
STORE = Conveyor(open_store(f"sqlite:///{ROOT / 'c.db'}"), actor="local:setup", workdir=ROOT)
STORE.claim()
apply_yaml(STORE, BASE + FLOW)
STORE.create_release("shop", "1.0.0", {"web": f"registry.local/web@{DIGEST}"})
STORE.add_user("root", [])
STORE.grant("user:root", Role.ADMIN, Scope())
TOKEN = STORE.create_token("root", timedelta(days=1))[1]
APP = create_app(Server(STORE.store, SystemClock(), default_registry(), ROOT))
schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def _cleanup() -> Iterator[None]:
    yield
    STORE.close()
    shutil.rmtree(ROOT, ignore_errors=True)


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_request_gets_a_server_error(case: Any) -> None:
    response = case.call(headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code < 500, (case.method, case.path, response.text)
