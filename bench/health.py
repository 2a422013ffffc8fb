"""Health at scale: one evaluation of every entity's reports over a 13-day window.

1,000 entities of 10 nodes each, N/1,000 reports per entity, in a SQLite store in a temp
dir. Per size it times the read (`engine.health._reports`: one query of two integers per
report, fetched in chunks into arrays, then the environment's node names; timed once) and
the evaluation (`health.columnar.evaluate_columns`; the median of three runs) separately,
then their sum, and measures the peak memory of read+evaluate with tracemalloc in an untimed
run (numpy's arrays are traced, SQLite's page cache is not), and times `show` (definitions +
read + evaluate) once. At 100k it also runs the reference (`health.timeline.evaluate` over
ORM rows, the path before) and checks that both give the same results. Writing 10M rows to
SQLite takes minutes, so by default 10M is measured on the evaluation only, from arrays built
in memory; `--store-10m` stores it too.
Goal: 1M in <= 1 s, linear, peak memory under 1 GB.

    .venv/bin/python bench/health.py [--sizes 100000,1000000] [--big 10000000] [--store-10m]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import numpy as np
from sqlalchemy import select

from conveyor.clock import SystemClock
from conveyor.engine import health
from conveyor.engine.service import Conveyor
from conveyor.health.columnar import STATE_CODES, STATE_NAMES, Columns, evaluate_columns, us
from conveyor.health.timeline import EntityHealth, HealthState, Report, Weekends, evaluate
from conveyor.spec import load_text
from conveyor.store.db import open_store
from conveyor.store.tables import HEALTH_STATE_CODES, HealthReportRow

ENTITIES, NODES = 1_000, 10
START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday; the window holds two weekends
NOW = START + timedelta(days=13)
ZONE = "Europe/Berlin"
WEEKENDS = Weekends(ZONE)
DEFINITIONS = f"""
apiVersion: conveyor.dev/v1
kind: Product
metadata: {{name: shop}}
spec: {{timeZone: {ZONE}}}
---
apiVersion: conveyor.dev/v1
kind: Environment
metadata: {{name: prod}}
spec: {{type: production}}
"""
# Mostly healthy fleets, some warnings and errors, a few liveness-only nodes.
STATES = [None, "HEALTHY", "DEFERRING", "WARNING", "ERROR"]
WEIGHTS = [0.03, 0.85, 0.04, 0.04, 0.04]


@dataclass
class Reports:
    """Generated reports in the order the store receives them (roughly by time)."""

    entity: np.ndarray[Any, np.dtype[np.int32]]
    node: np.ndarray[Any, np.dtype[np.int32]]
    time_us: np.ndarray[Any, np.dtype[np.int64]]
    live: np.ndarray[Any, np.dtype[np.bool_]]
    state: np.ndarray[Any, np.dtype[np.int8]]
    new_version: np.ndarray[Any, np.dtype[np.bool_]]


def generate(n: int, seed: int = 1) -> Reports:
    """Round k holds one report per entity, each at a random moment of the k-th slice of
    the window, so reports arrive roughly but not exactly in time order. The new version
    (1.0.0) rolls out after the first tenth of the rounds."""
    rng = np.random.default_rng(seed)
    rounds = n // ENTITIES
    window = us(NOW) - us(START)
    k = np.repeat(np.arange(rounds, dtype=np.int64), ENTITIES)
    entity = np.tile(np.arange(ENTITIES, dtype=np.int32), rounds)
    codes = np.array([STATE_CODES[s] for s in STATES], np.int8)
    return Reports(
        entity=entity,
        node=entity * NODES + rng.integers(0, NODES, len(k), dtype=np.int32),
        time_us=us(START) + k * window // rounds + rng.integers(0, window // rounds, len(k)),
        live=rng.random(len(k)) < 0.98,
        state=rng.choice(codes, len(k), p=WEIGHTS),
        new_version=k >= rounds // 10,
    )


def columns(r: Reports) -> Columns:
    return Columns(
        r.entity,
        r.node,
        r.time_us,
        r.live,
        r.state,
        r.new_version,
        entity_names=[f"cluster-{e:04d}" for e in range(ENTITIES)],
        node_names=[f"node-{i % NODES}" for i in range(ENTITIES * NODES)],
    )


def store_rows(cv: Conveyor, r: Reports) -> None:
    """Bulk load through the driver: executemany in one transaction, the index dropped and
    built again after (3x faster than maintaining it row by row), times as SQLAlchemy
    writes them. Node k of entity e is health node e * NODES + k + 1."""
    received = NOW.strftime("%Y-%m-%d %H:%M:%S.%f")
    stored_code = [None, *range(1, len(STATE_NAMES))]  # HEALTH_STATE_CODES, by columnar code
    assert all(HEALTH_STATE_CODES[str(STATE_NAMES[c])] == stored_code[c] for c in range(1, 8))
    raw = cv.store.engine.raw_connection()
    try:
        cursor = raw.cursor()
        (index,) = cursor.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'ix_health_reports_node_time'"
        ).fetchone()
        # The store's connections autocommit (SQLAlchemy emits BEGIN): one transaction here.
        cursor.execute("BEGIN")
        cursor.executemany(
            "INSERT INTO health_nodes (id, environment, entity, node) VALUES (?, 'prod', ?, ?)",
            [
                (e * NODES + k + 1, f"cluster-{e:04d}", f"node-{k}")
                for e in range(ENTITIES)
                for k in range(NODES)
            ],
        )
        cursor.execute("DROP INDEX ix_health_reports_node_time")
        for lo in range(0, len(r.entity), 1_000_000):  # slices bound the rows held as objects
            part = slice(lo, lo + 1_000_000)
            text = np.datetime_as_string(r.time_us[part].astype("datetime64[us]"), unit="us")
            rows = zip(
                (r.node[part] + 1).tolist(),
                np.char.replace(text, "T", " ").tolist(),
                r.time_us[part].tolist(),
                r.live[part].tolist(),
                map(stored_code.__getitem__, r.state[part].tolist()),
                np.where(r.new_version[part], "1.0.0", "0.9.0").tolist(),
                strict=True,
            )
            cursor.executemany(
                "INSERT INTO health_reports (environment, node_id, time, time_us, live, state_code,"
                f" version, received_at) VALUES ('prod', ?, ?, ?, ?, ?, ?, '{received}')",
                cast(Any, rows),  # sqlite3 takes any iterable: no list of a million tuples
            )
        cursor.execute(index)
        cursor.execute("COMMIT")
        # A running store checkpoints as it goes; reads through a huge WAL would be slower.
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        raw.close()


def evaluate_timed(cols: Columns) -> tuple[float, dict[str, EntityHealth]]:
    """The median of three evaluations: one run on a shared 2-core box varies by +-30%."""
    times, result = [], {}
    for _ in range(3):
        start = time.perf_counter()
        result = evaluate_columns(cols, NOW, WEEKENDS)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def read_and_evaluate(cv: Conveyor) -> tuple[float, float, dict[str, EntityHealth]]:
    with cv.store.session() as s:
        start = time.perf_counter()
        cols = health._reports(s, "prod", NOW, None, "1.0.0")
        read = time.perf_counter() - start
    return (read, *evaluate_timed(cols))


def read_and_evaluate_once(cv: Conveyor) -> None:
    with cv.store.session() as s:
        cols = health._reports(s, "prod", NOW, None, "1.0.0")
    evaluate_columns(cols, NOW, WEEKENDS)


def peak_mb(work: Callable[[], object]) -> float:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def reference(cv: Conveyor) -> tuple[float, dict[str, EntityHealth]]:
    """The pure-Python path `show` took before: ORM rows in time order into `evaluate`."""
    start = time.perf_counter()
    with cv.store.session() as s:
        q = select(HealthReportRow).where(HealthReportRow.environment == "prod")
        rows = s.scalars(q.order_by(HealthReportRow.time, HealthReportRow.id))
        reports = (
            Report(
                row.entity,
                row.node,
                row.time,
                row.live,
                None if row.state is None else HealthState(row.state),
                row.version,
            )
            for row in rows
        )
        result = evaluate(reports, "1.0.0", NOW, WEEKENDS)
    return time.perf_counter() - start, result


@dataclass
class Figures:
    n: int
    read: float
    evaluate: float
    peak: float

    @property
    def total(self) -> float:
        return self.read + self.evaluate


def stored(n: int, check: bool) -> Figures:
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:
        cv = Conveyor(
            open_store(f"sqlite:///{Path(tmp) / 'bench.db'}"),
            clock=SystemClock(),
            workdir=Path(tmp),
        )
        try:
            cv.apply(docs=load_text(DEFINITIONS, "bench.yaml"))
            start = time.perf_counter()
            store_rows(cv, generate(n))
            print(f"  {n:>10,} reports stored in {time.perf_counter() - start:.1f} s")
            read, evaluated, result = read_and_evaluate(cv)
            if len(result) != ENTITIES:
                raise SystemExit(f"{len(result)} entities evaluated, {ENTITIES} expected")
            # Through the product's definitions too, as `conveyor health show` does.
            start = time.perf_counter()
            shown = cv.health("prod", "shop", "1.0.0", at=NOW)
            show = time.perf_counter() - start
            if shown != result:
                raise SystemExit("show() differs from read + evaluate_columns")
            peak = peak_mb(lambda: read_and_evaluate_once(cv))
            print(f"  health show (definitions + read + evaluate): {show:.3f} s")
            if check:
                seconds, expected = reference(cv)
                same = expected == result
                print(f"  reference (ORM rows + timeline.evaluate): {seconds:.2f} s, same: {same}")
                if not same:
                    raise SystemExit("the columnar results differ from the reference")
        finally:
            cv.close()
    return Figures(n, read, evaluated, peak)


def in_memory(n: int) -> Figures:
    cols = columns(generate(n))
    evaluated, result = evaluate_timed(cols)
    if len(result) != ENTITIES:
        raise SystemExit(f"{len(result)} entities evaluated, {ENTITIES} expected")
    return Figures(n, 0.0, evaluated, peak_mb(lambda: evaluate_columns(cols, NOW, WEEKENDS)))


def line(f: Figures, stored: bool) -> str:
    if stored:
        return (
            f"{f.n:>10,} reports: read {f.read:.3f} s + evaluate {f.evaluate:.3f} s = "
            f"{f.total:.3f} s, {f.n / f.total:,.0f} reports/s "
            f"(evaluate alone {f.n / f.evaluate:,.0f}/s), peak {f.peak:.0f} MB"
        )
    return (
        f"{f.n:>10,} reports: evaluate only (arrays in memory, no store) {f.evaluate:.3f} s, "
        f"{f.n / f.evaluate:,.0f} reports/s, peak {f.peak:.0f} MB beyond the input columns"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="stored sizes, comma-separated")
    parser.add_argument("--big", type=int, default=10_000_000, help="0 to skip")
    parser.add_argument("--store-10m", action="store_true", help="store --big too (minutes)")
    args = parser.parse_args()
    sizes = {int(s) for s in args.sizes.split(",")}
    if args.store_10m and args.big:
        sizes.add(args.big)
    results: dict[int, Figures] = {}
    for n in sorted(sizes):
        results[n] = stored(n, check=n <= 100_000)
        print(line(results[n], stored=True))
    if args.big and args.big not in results:
        results[args.big] = in_memory(args.big)
        print(line(results[args.big], stored=False))
    ns = sorted(results)
    growth = ", ".join(
        f"{a:,} -> {b:,}: x{results[b].evaluate / results[a].evaluate:.1f}"
        for a, b in itertools.pairwise(ns)
    )
    print(f"evaluation time growth (linear is x{ns[-1] // ns[-2] if len(ns) > 1 else 1}): {growth}")
    one = results.get(1_000_000)
    if one is None or not one.read:
        raise SystemExit("no stored 1,000,000-report run: add 1000000 to --sizes")
    verdict = {True: "met", False: "NOT met"}
    print(
        f"goal 1M <= 1 s: read + evaluate {one.total:.3f} s ({verdict[one.total <= 1]}); "
        f"evaluate alone {one.evaluate:.3f} s ({verdict[one.evaluate <= 1]}); "
        f"peak {one.peak:.0f} MB ({verdict[one.peak < 1024]} for < 1 GB)"
    )
    print(
        f"RESULT seconds_1m={one.total:.3f} reports_per_s={one.n / one.total:.0f} "
        f"peak_mb={one.peak:.0f}"
    )


if __name__ == "__main__":
    main()
