"""Fan-out: N parallel environments whose one task sleeps 1 s cost about one environment.

Seed 002: serial deployments add up (30 environments of a 1 s task: 30 s). Runs a flow
with one environment (the baseline) and one with N, both with the system clock, and
prints the ratio of their wall times. Goal: ratio <= 1.15.

    .venv/bin/python bench/fanout.py [--envs 100] [--task-seconds 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from conveyor.clock import SystemClock
from conveyor.engine.service import Conveyor
from conveyor.spec import load_text
from conveyor.store.db import open_store

DIGEST = "sha256:" + "b" * 64


def definitions(envs: int, seconds: float) -> str:
    docs = [
        "apiVersion: conveyor.dev/v1\nkind: Product\nmetadata: {name: fan}\n"
        "spec: {artifacts: [{name: app, type: image}]}\n",
        "apiVersion: conveyor.dev/v1\nkind: Environment\nmetadata: {name: build}\nspec: {}\n",
    ]
    names = [f"region-{i:02d}" for i in range(envs)]
    docs += [
        f"apiVersion: conveyor.dev/v1\nkind: Environment\nmetadata: {{name: {n}, "
        "labels: {fan: out}}\nspec: {type: production}\n"
        for n in names
    ]
    nodes = "".join(f"    - {{name: {n}, dependsOn: [build]}}\n" for n in names)
    docs.append(
        "apiVersion: conveyor.dev/v1\nkind: PromotionFlow\nmetadata: {name: fanout}\nspec:\n"
        '  version: "1.00"\n  product: fan\n  triggerEnvironment: build\n'
        f"  environments:\n{nodes}"
    )
    docs.append(
        "apiVersion: conveyor.dev/v1\nkind: PromotionPolicy\nmetadata: {name: deploy}\nspec:\n"
        "  selector: {environments: {labels: {fan: out}}}\n"
        "  workflow:\n    steps:\n      - name: deploy\n        tasks:\n"
        f"          - {{name: sleep, uses: run, with: {{args: [sleep, '{seconds}']}}}}\n"
    )
    return "---\n".join(docs)


def run(envs: int, seconds: float) -> float:
    """Wall time from trigger to the release's end, measured around the engine's run."""
    with tempfile.TemporaryDirectory(prefix="conveyor-bench-") as tmp:
        cv = Conveyor(
            open_store(f"sqlite:///{Path(tmp) / 'bench.db'}"),
            clock=SystemClock(),
            workdir=Path(tmp),
        )
        cv.apply(docs=load_text(definitions(envs, seconds), "bench.yaml"))
        cv.create_release("fan", "1.0.0", {"app": f"registry.local/app@{DIGEST}"})
        # The engine is up before the release comes, as a running `conveyor engine` is.
        cv.engine.runner.wait_ready(timeout=10)
        start = time.perf_counter()
        cv.trigger("fanout", "fan@1.0.0")
        cv.run_until_idle()
        wall = time.perf_counter() - start
        status = cv.show("fan@1.0.0").status
        cv.close()
    if status != "succeeded":
        raise SystemExit(f"the release ended {status}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=100)
    parser.add_argument("--task-seconds", type=float, default=1.0)
    args = parser.parse_args()
    one = run(1, args.task_seconds)
    wall = run(args.envs, args.task_seconds)
    ratio = wall / one
    print(f"one environment: {one:.3f} s")
    print(f"{args.envs} parallel environments: {wall:.3f} s (serially: ~{one * args.envs:.1f} s)")
    print(f"RESULT ratio={ratio:.3f} wall_s={wall:.3f} one_s={one:.3f} envs={args.envs}")


if __name__ == "__main__":
    main()
