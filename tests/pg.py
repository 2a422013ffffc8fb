"""A throwaway PostgreSQL server for the test session, and a fresh database per test.

The server runs from a temporary directory, on a free loopback port, with durability off
(a test database need not survive a power cut). PostgreSQL refuses to run as root: as root,
its programs run as the `postgres` user. Missing programs fail the tests that need them:
`make sysdeps` installs them."""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from conveyor.store.db import open_store
from tests.gitrepos import free_port

# Debian keeps the server's programs off PATH, one directory per major version.
_VERSIONS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
_NEWEST = _VERSIONS[-1] if _VERSIONS else Path("/nonexistent")
BIN = Path(os.environ.get("CONVEYOR_TEST_PG_BIN") or _NEWEST)
TEMPLATE = "conveyor_head"
_names = itertools.count(1)


def _tool(name: str) -> str:
    found = BIN / name if (BIN / name).exists() else shutil.which(name)
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is missing: `make sysdeps` installs it")
    return str(found)


class Postgres:
    """One server; `database()` makes a new database at Conveyor's head from a template."""

    def __init__(self, port: int, root: Path) -> None:
        self.port, self.root = port, root
        self.base = f"postgresql+psycopg://conveyor@127.0.0.1:{port}"

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host="127.0.0.1", port=self.port, user="conveyor", dbname="postgres", autocommit=True
        )

    def database(self) -> str:
        name = f"t{next(_names)}"
        with self.admin() as con:
            con.execute(f'CREATE DATABASE "{name}" TEMPLATE {TEMPLATE}')
        return f"{self.base}/{name}"


@contextmanager
def postgres_server() -> Iterator[Postgres]:
    root = Path(tempfile.mkdtemp(prefix="conveyor-pg-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        as_postgres = ["runuser", "-u", "postgres", "--"]
    data, log = root / "data", root / "server.log"
    port = free_port()

    def run(*argv: str) -> None:
        done = subprocess.run([*as_postgres, *argv], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{argv[0]} failed: {done.stderr.strip()}\n{tail}")

    options = (
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    initdb = ("-D", str(data), "-A", "trust", "-U", "conveyor", "-E", "UTF8", "--no-sync")
    run(_tool("initdb"), *initdb)
    run(_tool("pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "start")
    server = Postgres(port, root)
    try:
        with server.admin() as con:
            con.execute(f"CREATE DATABASE {TEMPLATE}")
        open_store(f"{server.base}/{TEMPLATE}").close()  # migrated once, copied per test
        yield server
    finally:
        run(_tool("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)
