"""The README's production section, run: its connection settings block against a real,
empty PostgreSQL database (the URL and the keys' directory swapped for the test's)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conveyor.errors import ConveyorError
from conveyor.store.db import open_store
from tests.pg import Postgres

ROOT = Path(__file__).resolve().parents[2]


def settings_block() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Production: PostgreSQL and several engines", 1)[1]
    after = section.split("**Connection settings.**", 1)[1]
    match = re.search(r"```\n(.*?)```", after, re.S)
    assert match, "the README lost its production settings block"
    return match.group(1)


def test_the_readme_production_settings_run_on_an_empty_database(
    pg: Postgres, tmp_path: Path
) -> None:
    with pg.admin() as con:
        con.execute('CREATE DATABASE "production_readme"')  # empty: no template of ours
    url = f"{pg.base}/production_readme".replace("postgresql+psycopg://", "postgresql://")
    script = settings_block()
    script = re.sub(r"CONVEYOR_DATABASE_URL='[^']*'", f"CONVEYOR_DATABASE_URL='{url}'", script)
    script = script.replace("/etc/conveyor/audit", str(tmp_path / "audit"))
    bin_dir = Path(sys.executable).parent
    done = subprocess.run(
        ["bash", "-e", "-c", script],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("database schema at revision "), lines
    head = lines[0].split()[4]
    assert lines[1] == f"database schema {head}; this Conveyor's {head}", lines


@pytest.mark.parametrize("name", ["CONVEYOR_DB_POOL_SIZE", "CONVEYOR_DB_MAX_OVERFLOW"])
def test_a_pool_size_that_is_not_a_number_is_refused(
    pg: Postgres, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, "lots")
    with pytest.raises(ConveyorError, match=f"{name}='lots' is not a count of connections"):
        open_store(pg.database())


def test_pool_sizes_are_taken_from_the_environment(
    pg: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVEYOR_DB_POOL_SIZE", "2")
    monkeypatch.setenv("CONVEYOR_DB_MAX_OVERFLOW", "0")
    store = open_store(pg.database())
    try:
        pool = store.engine.pool
        assert (pool.size(), pool._max_overflow) == (2, 0)  # type: ignore[attr-defined]
    finally:
        store.close()
