"""Reaction time: from an event to the first task of the promotion it unblocks starting.

A `conveyor engine` runs in another process on a SQLite file, with W other releases
(default 1,000, over 20 products) waiting on a 1-day soak. Trials alternate two events,
fired from this process through Conveyor's API (which wakes the engine through the socket
beside the database):
  label:  `Conveyor.label` sets the label an entry gate `releaseLabel` waits for;
  canary: `Conveyor.report_health` reports the one entity of an entry gate `canary`
          (promote when 1 entity is healthy, soak 0s) healthy with the release's version.
Per trial: create a release (its flow triggers it), wait until the engine has evaluated
its gate and gone idle (its CPU time stops growing), take t0, fire the event, then poll
the database read-only every 2 ms (at most 10 s) for the promotion's task row to get
`started_at`. Three figures per trial, from t0:
  ran:        the task's own start (it writes `date +%s.%N` to a file; same machine clock);
  started_at: the row's `started_at`. Today the engine stamps it with the time the pass
              *began*, and hands the task to its runner only after that pass commits, so
              this figure leaves out the pass itself: with 1,000 releases open it says
              ~10 ms while the task really starts 1-2 s later;
  seen:       when this process first read the row (the pass committed).
The RESULT's median and p99 are `ran`: what a user waits for. `started_at` is given too.
Goal: median <= 50 ms, p99 <= 200 ms (one release alone: 4-9 ms on 2026-12-03).

Today an engine pass over 1,000 open releases takes seconds, and each trial costs several
passes, so 100 trials would take many minutes: trials stop after `--budget` seconds (at
least `--min-trials`), and the last line says how many ran. `--budget 0` runs them all.
Creating the 1,000 waiting releases through the API also takes 15-30 s today.

With --postgresql the store is a throwaway PostgreSQL server (the tests'), the events are
HTTP requests to an API process (`conveyor serve --no-engine`) and the engine runs in a
third process, woken by LISTEN/NOTIFY. 2026-12-04, 1,000 waiting: median 30 ms, p99 76 ms
(SQLite: 17 ms, 26 ms).

    .venv/bin/python bench/latency.py [--waiting 1000] [--trials 100] [--budget 25]
        [--postgresql]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg

from api import free_port, start  # bench/api.py, beside this script
from conveyor.clock import SystemClock
from conveyor.engine.service import Conveyor
from conveyor.model.access import Role, Scope
from conveyor.spec import load_text
from conveyor.store.db import open_store

BULK_PRODUCTS = 20
POLL = 0.002
TIMEOUT = 10.0
QUIET = 0.06  # the engine is idle when its CPU time has not grown for this long
ENTITY_ENV, ENTITY = "fleet", "fleet-1"


def digest(n: int) -> str:
    return "sha256:" + f"{n:x}".rjust(64, "0")


def definitions(bulk_products: int, waiting: int, trials: int) -> str:
    limit = max(1, -(-waiting // bulk_products))
    docs = [
        "apiVersion: conveyor.dev/v1\nkind: Environment\nmetadata: {name: soak, "
        "labels: {gate: soak}}\nspec: {}\n",
        "apiVersion: conveyor.dev/v1\nkind: Environment\nmetadata: {name: lbl-dev, "
        "labels: {gate: label}}\nspec: {}\n",
        "apiVersion: conveyor.dev/v1\nkind: Environment\nmetadata: {name: can-dev, "
        "labels: {gate: canary}}\nspec: {}\n",
        f"apiVersion: conveyor.dev/v1\nkind: Environment\nmetadata: {{name: {ENTITY_ENV}}}\n"
        f"spec: {{entities: [{{name: {ENTITY}}}]}}\n",
    ]

    def product(name: str, env: str, limit: int) -> list[str]:
        return [
            f"apiVersion: conveyor.dev/v1\nkind: Product\nmetadata: {{name: {name}}}\n"
            # Health counts weekday time only by default; the bench runs on weekends too.
            "spec: {rolloutCriteria: {weekendDays: []}, "
            "artifacts: [{name: app, type: image}]}\n",
            f"apiVersion: conveyor.dev/v1\nkind: PromotionFlow\nmetadata: {{name: {name}}}\n"
            f'spec:\n  version: "1"\n  product: {name}\n  triggerEnvironment: {env}\n'
            f"  autoTrigger: true\n  concurrency: {{mode: queue, limit: {limit}}}\n",
        ]

    for i in range(bulk_products):
        docs += product(f"bulk{i:02d}", "soak", limit)
    docs += product("lbl", "lbl-dev", trials + 1)
    docs += product("can", "can-dev", trials + 1)
    docs += [
        "apiVersion: conveyor.dev/v1\nkind: PromotionPolicy\nmetadata: {name: deploy}\n"
        "spec:\n  workflow:\n    steps:\n      - name: deploy\n        tasks:\n"
        # The task notes when it really started (its process's clock), for `ran`.
        "          - {name: note, uses: run, with: {args: [sh, -c, 'date +%s.%N > \"$0\"',"
        " 'started-${{ release.version }}']}}\n",
        "apiVersion: conveyor.dev/v1\nkind: PromotionPolicy\nmetadata: {name: soak}\n"
        "spec:\n  priority: 1\n  selector: {environments: {labels: {gate: soak}}}\n"
        "  gates:\n    - timed: {duration: 1d}\n",
        "apiVersion: conveyor.dev/v1\nkind: PromotionPolicy\nmetadata: {name: label}\n"
        "spec:\n  priority: 1\n  selector: {environments: {labels: {gate: label}}}\n"
        "  gates:\n    - releaseLabel: {key: go, values: ['yes']}\n",
        "apiVersion: conveyor.dev/v1\nkind: PromotionPolicy\nmetadata: {name: canary}\n"
        "spec:\n  priority: 1\n  selector: {environments: {labels: {gate: canary}}}\n"
        "  gates:\n    - canary:\n"
        f"        entities: {{environments: [{ENTITY_ENV}]}}\n"
        "        promoteWhenHealthy: {entities: 1, soak: 0s}\n",
    ]
    return "---\n".join(docs)


class Reader:
    """Read-only polling of the database, as `release watch` would."""

    def __init__(self, url: str) -> None:
        self.pg = url.startswith("postgresql")
        if self.pg:
            conninfo = url.replace("postgresql+psycopg://", "postgresql://")
            self.conn: Any = psycopg.connect(conninfo, autocommit=True)
        else:
            db = url.removeprefix("sqlite:///")
            self.conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)

    def one(self, sql: str, *args: object) -> tuple[object, ...] | None:
        if self.pg:
            sql = sql.replace("?", "%s")
        row: tuple[object, ...] | None = self.conn.execute(sql, args).fetchone()
        return row

    def wait(self, what: str, sql: str, *args: object, timeout: float = TIMEOUT) -> tuple:
        deadline = time.monotonic() + timeout
        while True:
            row = self.one(sql, *args)
            if row is not None and row[0]:
                return row
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(POLL)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_idle(engine: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Until the engine's CPU time has not grown for QUIET seconds (it sleeps between
    passes), so that an event does not land in the middle of a pass."""
    deadline = time.monotonic() + timeout
    last, since = cpu_seconds(engine.pid), time.monotonic()
    while time.monotonic() - since < QUIET:
        if engine.poll() is not None:
            raise SystemExit(f"the engine exited with {engine.returncode}")
        if time.monotonic() > deadline:
            raise SystemExit(f"the engine did not go idle within {timeout:.0f} s")
        time.sleep(0.01)
        now = cpu_seconds(engine.pid)
        if now != last:
            last, since = now, time.monotonic()


class Events:
    """Fires the trials' events: through the Conveyor facade in this process, or with
    --postgresql as HTTP requests to an API process (`serve --no-engine`)."""

    def __init__(self, cv: Conveyor, api: httpx.Client | None) -> None:
        self.cv, self.api = cv, api

    def label(self, ref: str) -> None:
        if self.api is None:
            self.cv.label(ref, {"go": "yes"})
            return
        self.api.post(
            f"/api/v1/releases/{ref}/labels", json={"set": {"go": "yes"}}
        ).raise_for_status()

    def healthy(self, version: str) -> None:
        if self.api is None:
            self.cv.report_health(ENTITY_ENV, ENTITY, "pod-1", True, "HEALTHY", version)
            return
        report = {
            "environment": ENTITY_ENV,
            "entity": ENTITY,
            "node": "pod-1",
            "live": True,
            "state": "HEALTHY",
            "version": version,
        }
        self.api.post("/api/v1/health/reports", json=report).raise_for_status()


def api_process(url: str, tmp: Path, cv: Conveyor) -> tuple[subprocess.Popen[bytes], httpx.Client]:
    """`conveyor serve --no-engine` on the store, and a client with a token that may label
    releases and report health."""
    cv.claim()
    cv.add_user("bench", [])
    cv.grant("user:bench", Role.PROMOTER, Scope())
    cv.grant("user:bench", Role.REPORTER, Scope())
    token = cv.create_token("bench", timedelta(days=1))[1]
    port = free_port()
    proc = start(url, tmp, port, engine=False)  # bench/api.py's: waits for /readyz
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {token}"}
    return proc, httpx.Client(base_url=base, headers=headers, trust_env=False)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def summary(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):7.1f} ms  p99 {percentile(values, 0.99):7.1f} ms"
        f"  ({len(values)} trials)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waiting", type=int, default=1000)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--budget", type=float, default=25.0, help="seconds of trials; 0: all")
    parser.add_argument("--min-trials", type=int, default=4)
    parser.add_argument(
        "--postgresql",
        action="store_true",
        help="a throwaway PostgreSQL; events posted to an API process",
    )
    args = parser.parse_args()

    conveyor_bin = Path(sys.executable).parent / "conveyor"
    # A short path: the wake-up socket beside the database must fit in sun_path.
    tmp = Path(tempfile.mkdtemp(prefix="cv-lat-", dir="/tmp"))
    stack = contextlib.ExitStack()
    engine: subprocess.Popen[bytes] | None = None
    api: subprocess.Popen[bytes] | None = None
    if args.postgresql:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.pg import postgres_server  # the tests' throwaway server

        url = stack.enter_context(postgres_server()).database()
        os.environ["CONVEYOR_AUDIT_DIR"] = str(tmp / "audit")  # shared with the processes
    else:
        url = f"sqlite:///{tmp / 'bench.db'}"
    actor = "local:bench" if args.postgresql else "anonymous"  # the API needs a first admin
    cv = Conveyor(open_store(url), clock=SystemClock(), workdir=tmp, actor=actor)
    try:
        client = None
        if args.postgresql:
            api, client = api_process(url, tmp, cv)
        events = Events(cv, client)
        cv.apply(docs=load_text(definitions(BULK_PRODUCTS, args.waiting, args.trials), "b.yaml"))
        start = time.perf_counter()
        for k in range(args.waiting):
            p, version = f"bulk{k % BULK_PRODUCTS:02d}", f"1.0.{k // BULK_PRODUCTS}"
            cv.create_release(p, version, {"app": f"registry.local/{p}@{digest(k)}"})
        setup = time.perf_counter() - start
        print(f"created {args.waiting} waiting releases: {setup:.1f} s")

        engine = subprocess.Popen(
            [str(conveyor_bin), "--db", url, "engine"],
            cwd=tmp,
            stdout=subprocess.DEVNULL,
            stderr=open(tmp / "engine.log", "wb"),  # noqa: SIM115 (closed with the process)
        )
        reader = Reader(url)
        start = time.perf_counter()
        reader.wait(
            "the engine's first look at the waiting releases",
            "SELECT count(*) >= ? FROM promotions WHERE state = 'waiting'",
            args.waiting,
            timeout=300,
        )
        wait_idle(engine)
        print(f"engine started and looked at them: {time.perf_counter() - start:.1f} s")

        # ran: the task's own start; db: its row's started_at; seen: this process reads it.
        ran: dict[str, list[float]] = {"label": [], "canary": []}
        db: dict[str, list[float]] = {"label": [], "canary": []}
        seen: list[float] = []
        trials_start = time.perf_counter()
        for i in range(args.trials):
            if (
                args.budget
                and i >= args.min_trials
                and time.perf_counter() - trials_start > args.budget
            ):
                break
            kind = "label" if i % 2 == 0 else "canary"
            product, version = ("lbl" if kind == "label" else "can"), f"2.0.{i}"
            release = cv.create_release(product, version, {"app": f"r.local/x@{digest(i)}"})
            (promotion,) = reader.wait(
                "the promotion", "SELECT id FROM promotions WHERE release_id = ?", release.id
            )
            reader.wait(
                "the engine to evaluate the gate",
                "SELECT count(*) FROM gate_results WHERE promotion_id = ?",
                promotion,
            )
            row = reader.one("SELECT 1 FROM task_runs WHERE promotion_id = ?", promotion)
            if row is not None:
                raise SystemExit(f"trial {i}: the task started before the event")
            wait_idle(engine)

            t0 = time.time()
            if kind == "label":
                events.label(f"{product}@{version}")
            else:
                events.healthy(version)
            (started,) = reader.wait(
                "the task to start",
                "SELECT started_at FROM task_runs WHERE promotion_id = ? "
                "AND started_at IS NOT NULL",
                promotion,
            )
            t_seen = time.time()
            if not isinstance(started, datetime):  # SQLite: ISO text, in UTC
                started = datetime.fromisoformat(str(started)).replace(tzinfo=UTC)
            at = started.timestamp()
            db[kind].append((at - t0) * 1000)
            seen.append((t_seen - t0) * 1000)
            reader.wait(
                "the promotion to succeed",
                "SELECT count(*) FROM promotions WHERE id = ? AND state = 'succeeded'",
                promotion,
            )
            ran[kind].append((float((tmp / f"started-{version}").read_text()) - t0) * 1000)

        for name, figures in (("ran", ran), ("started_at", db)):
            for kind, values in figures.items():
                print(f"{name:>10} {kind:>6}: {summary(values)}")
            print(f"{name:>10}    all: {summary(figures['label'] + figures['canary'])}")
        print(f"{'seen':>10}    all: {summary(seen)}")
        every, stamped = ran["label"] + ran["canary"], db["label"] + db["canary"]
        median, p99 = statistics.median(every), percentile(every, 0.99)
        print(
            f"{len(every)} trials, {args.waiting} other releases waiting; "
            f"goal (ran): median <= 50 ms, p99 <= 200 ms"
        )
        engine.send_signal(signal.SIGTERM)
        engine.wait(timeout=30)
        print(
            f"RESULT median_ms={median:.1f} p99_ms={p99:.1f} trials={len(every)} "
            f"started_at_median_ms={statistics.median(stamped):.1f} "
            f"started_at_p99_ms={percentile(stamped, 0.99):.1f} "
            f"waiting={args.waiting} setup_s={setup:.1f} "
            f"database={'postgresql' if args.postgresql else 'sqlite'}"
        )
    finally:
        for proc in (engine, api):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        cv.close()
        stack.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
