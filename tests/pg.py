"""A throwaway PostgreSQL server for the test session, and a fresh database per test.

The server runs from a temporary directory, on a free loopback port, with durability off
(a test database need not survive a power cut). PostgreSQL refuses to run as root: as root,
its programs run as the `postgres` user. Missing programs fail the tests that need them:
`make sysdeps` installs them."""

from __future__ import annotations

import contextlib
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
    """One server; `database()` makes a new database at Conveyor's head from a template;
    `stop()` and `start()` make an outage."""

    def __init__(self, root: Path) -> None:
        self.root, self.port = root, free_port()
        self.base = f"postgresql+psycopg://conveyor@127.0.0.1:{self.port}"
        self.data, self.log = root / "data", root / "server.log"
        self._as_postgres: list[str] = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(root, owner.pw_uid, owner.pw_gid)
            self._as_postgres = ["runuser", "-u", "postgres", "--"]

    def _run(self, *argv: str) -> None:
        done = subprocess.run(
            [*self._as_postgres, *argv], capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            tail = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{argv[0]} failed: {done.stderr.strip()}\n{tail}")

    def init(self) -> None:
        initdb = ("-D", str(self.data), "-A", "trust", "-U", "conveyor", "-E", "UTF8")
        self._run(_tool("initdb"), *initdb, "--no-sync")
        self.start()
        with self.admin() as con:
            con.execute(f"CREATE DATABASE {TEMPLATE}")
        open_store(f"{self.base}/{TEMPLATE}").close()  # migrated once, copied per test

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        where = ("-D", str(self.data), "-l", str(self.log))
        self._run(_tool("pg_ctl"), *where, "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(_tool("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

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
    server = Postgres(Path(tempfile.mkdtemp(prefix="conveyor-pg-")))
    try:
        server.init()
        yield server
    finally:
        with contextlib.suppress(RuntimeError):
            server.stop("immediate")
        shutil.rmtree(server.root, ignore_errors=True)
