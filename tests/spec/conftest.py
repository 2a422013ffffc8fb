"""The base definitions (tests.conftest.BASE) applied, for the bad-input tests."""

from __future__ import annotations

import pytest

from conveyor.engine.service import Conveyor
from tests.conftest import BASE, apply_yaml


@pytest.fixture
def base(cv: Conveyor) -> Conveyor:
    apply_yaml(cv, BASE, "base.yaml")
    return cv
