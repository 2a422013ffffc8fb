"""Engine scale: promotions per second with tasks, and what an idle pass costs.

Throughput: N releases (default 1,000) of P products
(default 50) through a 5-node flow with a fan-out and a fan-in (dev -> {qa-a, qa-b} ->
stage -> prod), each product with its own five environments (`p07-dev` ...) so products
do not queue on shared environments (an environment deploys one promotion at a time).
Every promotion runs one task, `run true`. Each flow queues (mode queue, limit above its
product's releases). All releases are created and triggered, then `run_until_idle` is
timed with the system clock; figure: succeeded promotions per second. A product's
releases pass through the same environments one after another; an older release never
deploys over a newer one, so one that falls behind a newer release in some environment
ends `superseded` there. Only succeeded promotions are counted, and the bench prints how
many releases ended in each state. Goal: >= 250/s (2026-12-03: 27/s).

Idle pass: the same definitions with an entry gate `timed: {duration: 1d}` on every
environment, M releases triggered and all waiting on it, nothing due. After warm-up
passes, the median of `--passes` calls of `Engine.run_pass`, at 10 and at 1,000 waiting
releases. Goal: 1,000 costs at most 2x 10.

A pass reads only the releases due (2026-12-03 after the engine issue: 1,000 releases at
~225/s, 200 at ~300/s; an idle pass ~1 ms at 10 and at 1,000 waiting). Creating the
1,000 idle releases through the API takes a few seconds; the idle products
(`--idle-products 20`) keep that down. Idle passes stop after `--budget` seconds (at
least 5).

PostgreSQL: the same flows on a throwaway PostgreSQL server (the tests' starter),
`--pg-releases` releases (default 300: the whole bench stays under a minute), moved by one
and then by two `conveyor engine` processes started once all are triggered; timed by the
store: the promotions that succeeded once every engine was up (its lease taken), over the
time from then to the last release's end. Goals: pg1 >= 250/s, pg2 >= 1.3 x pg1.
After a short warm-up run, not counted (a new server's first run is slower, whatever it
runs). 2026-12-04, seven runs: pg1 221-345/s, pg2 346-459/s, pg2/pg1 from 1.04 to 1.93,
at least 1.3 in six of them (runs vary: two engines, the `true` processes they start and
PostgreSQL share this machine's two cores). `--pg-releases 1000` is the issue's full
size; the default keeps the bench near a minute.

    .venv/bin/python bench/engine.py [--releases 1000] [--products 50] [--idle 10,1000]
        [--passes 20] [--pg-releases 300]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select

from conveyor.clock import SystemClock, utc
from conveyor.engine.service import Conveyor
from conveyor.spec import load_text
from conveyor.store.db import open_store
from conveyor.store.tables import EngineLeaseRow, PromotionRow, ReleaseRow

NODES = ("dev", "qa-a", "qa-b", "stage", "prod")


def digest(n: int) -> str:
    return "sha256:" + f"{n:x}".rjust(64, "0")


def product(i: int) -> str:
    return f"p{i:02d}"


def definitions(products: int, limit: int, gate: bool) -> str:
    """P products, each with its own five environments and its own flow; one policy for
    all: one `run true` task (after a 1-day soak when `gate`)."""
    docs = []
    for i in range(products):
        p = product(i)
        docs.append(
            f"apiVersion: conveyor.dev/v1\nkind: Product\nmetadata: {{name: {p}}}\n"
            "spec: {artifacts: [{name: app, type: image}]}\n"
        )
        docs += [
            f"apiVersion: conveyor.dev/v1\nkind: Environment\nmetadata: {{name: {p}-{n}}}\n"
            "spec: {}\n"
            for n in NODES
        ]
        docs.append(
            f"apiVersion: conveyor.dev/v1\nkind: PromotionFlow\nmetadata: {{name: {p}-flow}}\n"
            f'spec:\n  version: "1"\n  product: {p}\n  triggerEnvironment: {p}-dev\n'
            f"  concurrency: {{mode: queue, limit: {limit}}}\n  autoTrigger: true\n"
            "  environments:\n"
            f"    - {{name: {p}-qa-a, dependsOn: [{p}-dev]}}\n"
            f"    - {{name: {p}-qa-b, dependsOn: [{p}-dev]}}\n"
            f"    - {{name: {p}-stage, dependsOn: [{p}-qa-a, {p}-qa-b]}}\n"
            f"    - {{name: {p}-prod, dependsOn: [{p}-stage]}}\n"
        )
    gates = "  gates:\n    - timed: {duration: 1d}\n" if gate else ""
    docs.append(
        "apiVersion: conveyor.dev/v1\nkind: PromotionPolicy\nmetadata: {name: deploy}\nspec:\n"
        f"{gates}"
        "  workflow:\n    steps:\n      - name: deploy\n        tasks:\n"
        "          - {name: noop, uses: run, with: {args: ['true']}}\n"
    )
    return "---\n".join(docs)


def setup(tmp: Path, products: int, releases: int, gate: bool, url: str = "") -> Conveyor:
    """A Conveyor in `tmp` with `releases` releases created and triggered (the flows
    trigger at creation: one write per release instead of two), spread over the products
    round-robin (release k is version 1.0.{k // products} of its product)."""
    cv = Conveyor(
        open_store(url or f"sqlite:///{tmp / 'bench.db'}"),
        clock=SystemClock(),
        workdir=tmp,
    )
    per_product = -(-releases // products)
    cv.apply(docs=load_text(definitions(products, max(per_product, 1), gate), "bench.yaml"))
    for k in range(releases):
        p = product(k % products)
        version = f"1.0.{k // products}"
        row = cv.create_release(p, version, {"app": f"registry.local/{p}@{digest(k)}"})
        if row.status != "running":
            raise SystemExit(f"{p}@{version} was not triggered: {row.message}")
    return cv


def promotions(cv: Conveyor) -> Counter[str]:
    """How many promotions are in each state (one read-only query)."""
    with cv.store.session() as s:
        rows = s.execute(select(PromotionRow.state, func.count()).group_by(PromotionRow.state))
        return Counter({state: n for state, n in rows})


def throughput(products: int, releases: int) -> tuple[float, int, float, Counter[str]]:
    """(promotions per second, succeeded promotions, wall seconds, releases by status)."""
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:
        start = time.perf_counter()
        cv = setup(Path(tmp), products, releases, gate=False)
        print(f"  set up {releases} releases: {time.perf_counter() - start:.2f} s")
        cv.engine.runner.wait_ready(timeout=10)
        start = time.perf_counter()
        cv.run_until_idle()
        wall = time.perf_counter() - start
        statuses = Counter(r.status for r in cv.list_releases())
        succeeded = promotions(cv)["succeeded"]
        cv.close()
    return succeeded / wall, succeeded, wall, statuses


def pg_throughput(
    database: Callable[[], str], engines: int, products: int, releases: int
) -> tuple[float, int, float, Counter[str]]:
    """The same on a fresh PostgreSQL database, moved by `engines` `conveyor engine`
    processes started once every release is triggered. Timed by the store's own clock:
    from the first engine's lease to the last release's end."""
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:
        root = Path(tmp)
        os.environ["CONVEYOR_AUDIT_DIR"] = str(root / "audit")  # shared with the engines
        cv = setup(root, products, releases, gate=False, url=database())
        url = cv.store.engine.url.render_as_string(hide_password=False)
        exe = str(Path(sys.executable).parent / "conveyor")
        with (root / "engines.log").open("ab") as log:
            procs = [
                subprocess.Popen([exe, "--db", url, "engine"], cwd=root, stdout=log, stderr=log)
                for _ in range(engines)
            ]
        try:
            up = wait_done(cv, procs, root / "engines.log")
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(30)
        with cv.store.session() as s:
            ended = s.scalar(select(func.max(ReleaseRow.finished_at)))
            # Counted once every engine is up: what one did while another was still
            # starting (imports, threads) is not a figure of several engines.
            succeeded = s.scalar(
                select(func.count()).where(
                    PromotionRow.state == "succeeded", PromotionRow.state_since >= up
                )
            )
        assert ended is not None and succeeded
        wall = (utc(ended) - up).total_seconds()
        statuses = Counter(r.status for r in cv.list_releases())
        cv.close()
    return succeeded / wall, succeeded, wall, statuses


def wait_done(cv: Conveyor, procs: list[subprocess.Popen[bytes]], log: Path) -> datetime:
    """Wait (at most 5 minutes) until no release is open; when the last engine started."""
    deadline = time.monotonic() + 300
    up: datetime | None = None
    while True:
        with cv.store.read() as s:  # takes no lock the engines would wait for
            leases = s.scalars(select(EngineLeaseRow.started_at)).all()
            if up is None and len(leases) == len(procs):
                up = max(utc(t) for t in leases)
            running = s.scalar(
                select(func.count()).where(ReleaseRow.status.in_(["created", "running"]))
            )
        if not running and up is not None:
            return up
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise SystemExit(f"the engines did not finish: {log.read_text()[-2000:]}")
        time.sleep(0.05)


@dataclass
class Idle:
    median_ms: float
    passes: int
    setup_s: float
    first_s: float


def idle_pass(products: int, releases: int, passes: int, budget: float) -> Idle:
    """An idle pass with `releases` waiting: the median of `passes` passes, or of as many
    as `budget` seconds allow (at least 5)."""
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:
        start = time.perf_counter()
        cv = setup(Path(tmp), products, releases, gate=True)
        setup_s = time.perf_counter() - start
        engine = cv.engine
        start = time.perf_counter()
        engine.run_pass()  # pending -> waiting, every gate evaluated and stored
        first = time.perf_counter() - start
        outcome = engine.run_pass()  # warm-up; nothing moves any more
        if outcome.moved or outcome.inflight:
            raise SystemExit(f"not idle at {releases} releases: {outcome}")
        waiting = promotions(cv)["waiting"]
        if waiting != releases:  # one promotion per release: its root, at the gate
            raise SystemExit(f"{waiting} promotions waiting, expected {releases}")
        times: list[float] = []
        deadline = time.perf_counter() + budget
        while len(times) < passes and (len(times) < 5 or time.perf_counter() < deadline):
            start = time.perf_counter()
            engine.run_pass()
            times.append(time.perf_counter() - start)
        cv.close()
    return Idle(statistics.median(times) * 1000, len(times), setup_s, first)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=1000)
    parser.add_argument("--products", type=int, default=50)
    parser.add_argument("--idle", default="10,1000", help="two counts of waiting releases")
    parser.add_argument("--idle-products", type=int, default=20)
    parser.add_argument("--passes", type=int, default=20)
    parser.add_argument("--budget", type=float, default=10.0, help="seconds of idle passes")
    parser.add_argument(
        "--pg-releases", type=int, default=300, help="releases per PostgreSQL run (0: none)"
    )
    args = parser.parse_args()
    small, big = (int(n) for n in args.idle.split(","))

    print(f"throughput: {args.releases} releases of {args.products} products, 5 nodes each")
    per_s, succeeded, wall, statuses = throughput(args.products, args.releases)
    print(f"  releases: {dict(sorted(statuses.items()))}")
    print(
        f"  {succeeded} promotions succeeded of {args.releases * len(NODES)} "
        f"in {wall:.2f} s: {per_s:.1f}/s (goal >= 250/s)"
    )

    idle = {}
    for n in (small, big):
        m = idle_pass(args.idle_products, n, args.passes, args.budget)
        idle[n] = m.median_ms
        print(
            f"idle pass, {n} releases waiting: {m.median_ms:.1f} ms, median of {m.passes} "
            f"(set-up {m.setup_s:.1f} s, first pass {m.first_s:.2f} s)"
        )
    ratio = idle[big] / idle[small]
    print(f"  ratio {big}/{small}: {ratio:.2f} (goal <= 2)")
    pg_per_s = {}
    if args.pg_releases:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.pg import postgres_server  # the tests' throwaway PostgreSQL

        with postgres_server() as pg:
            # A first run on a new server is slower whatever it runs (cold caches): a
            # short one, not counted, so that neither figure pays for it.
            pg_throughput(pg.database, 1, args.products, max(args.pg_releases // 6, 1))
            for engines in (1, 2):
                rate, done, took, states = pg_throughput(
                    pg.database, engines, args.products, args.pg_releases
                )
                pg_per_s[engines] = rate
                print(
                    f"PostgreSQL, {engines} engine process(es), {args.pg_releases} releases: "
                    f"{done} promotions succeeded in {took:.2f} s: {rate:.1f}/s "
                    f"(releases: {dict(sorted(states.items()))})"
                )
        print(f"  2 engines / 1: {pg_per_s[2] / pg_per_s[1]:.2f} (goals: 1 >= 250/s, 2 >= 1.3x 1)")
    print(
        f"RESULT per_s={per_s:.1f} pg1_per_s={pg_per_s.get(1, 0):.1f} "
        f"pg2_per_s={pg_per_s.get(2, 0):.1f} idle_pass_ms_{small}={idle[small]:.1f} "
        f"idle_pass_ms_{big}={idle[big]:.1f} ratio={ratio:.2f} releases={args.releases} "
        f"succeeded={succeeded}"
    )


if __name__ == "__main__":
    main()
