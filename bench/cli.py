"""CLI start-up: how long a person waits for `conveyor --help`, `conveyor get flows` and
`conveyor p2p promote --help`, each the best of N runs of the installed console script in
a new process (what a shell or a CI step pays every time).

The database for `get flows` is a SQLite file with the demo's definitions, applied by the
CLI once before timing. The baseline, timed the same way in the same run, is the bare
interpreter (`python -c pass`): the part no change to Conveyor can remove.
Goal (issue 10): each of the three <= 0.25 s on the 2-core development machine.

    .venv/bin/python bench/cli.py [--runs 5]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONVEYOR = str(Path(sys.executable).parent / "conveyor")
GOAL_S = 0.25


def best_of(runs: int, args: list[str], cwd: Path) -> float:
    """The fastest of `runs` runs, in seconds; every run must succeed."""
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(args, cwd=cwd, check=True, capture_output=True)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        from conveyor.cli.demo import write_workspace

        defs = write_workspace(work)
        subprocess.run([CONVEYOR, "apply", "-f", defs], cwd=work, check=True, capture_output=True)
        figures = {
            "python_s": best_of(runs, [sys.executable, "-c", "pass"], work),
            "help_s": best_of(runs, [CONVEYOR, "--help"], work),
            "get_s": best_of(runs, [CONVEYOR, "get", "flows"], work),
            "p2p_help_s": best_of(runs, [CONVEYOR, "p2p", "promote", "--help"], work),
        }
    for name, seconds in figures.items():
        print(f"{name:12} {seconds * 1000:7.1f} ms")
    slowest = max(figures["help_s"], figures["get_s"], figures["p2p_help_s"])
    met = "met" if slowest <= GOAL_S else "unmet"
    print(f"goal: each <= {GOAL_S} s: {met}")
    ratio = slowest / figures["python_s"]
    print(
        "RESULT "
        + " ".join(f"{k}={v:.3f}" for k, v in figures.items())
        + f" slowest_vs_python={ratio:.1f} goal={met}"
    )


if __name__ == "__main__":
    main()
