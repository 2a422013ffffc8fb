"""The engine killed with SIGKILL at random moments while releases with git and `run` tasks
go through, restarted each time: every release finishes, no commit is made twice, every
re-run is a new attempt, and the audit trail verifies."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import select

from conveyor.engine.service import Conveyor
from conveyor.store.db import open_store
from conveyor.store.tables import TaskRunRow
from tests.conftest import BASE, apply_yaml, digest
from tests.gitrepos import bare_repo, git

KUSTOMIZATION = "resources: [../../base]\nimages:\n  - {name: web, newTag: old}\n"

DEFS = """
---
apiVersion: conveyor.dev/v1
kind: PromotionFlow
metadata: {name: main}
spec:
  version: "1.00"
  product: shop
  triggerEnvironment: dev
  concurrency: {mode: queue, limit: 10}
  environments:
    - {name: qa, dependsOn: [dev]}
    - {name: prod, dependsOn: [qa]}
---
apiVersion: conveyor.dev/v1
kind: PromotionPolicy
metadata: {name: all}
spec:
  workflow:
    steps:
      - name: deploy
        tasks:
          - name: overlay
            uses: git.kustomize-set-image
            retries: 3
            with:
              repo: REPO
              path: overlays/${{ environment.name }}
              image: web
              digest: ${{ artifacts.web.digest }}
          - name: note
            uses: run
            with:
              args: [sh, -c, 'echo "$0 $1" >> runs.txt; sleep 0.3',
                     "${{ environment.name }}", "${{ release.version }}"]
"""
VERSIONS = ("1.0.0", "1.1.0", "1.2.0")
ENVIRONMENTS = ("dev", "qa", "prod")


def engine(db: Path, cwd: Path) -> subprocess.Popen[bytes]:
    exe = str(Path(sys.executable).parent / "conveyor")
    return subprocess.Popen(
        [exe, "--db", str(db), "engine"],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_killed_at_random_the_engine_finishes_everything_once(tmp_path: Path) -> None:
    files = {f"overlays/{env}/kustomization.yaml": KUSTOMIZATION for env in ENVIRONMENTS}
    repo = bare_repo(tmp_path, "gitops", {**files, "base/kustomization.yaml": "resources: []\n"})
    db = tmp_path / "c.db"
    cv = Conveyor(open_store(f"sqlite:///{db}"), workdir=tmp_path)
    apply_yaml(cv, BASE + DEFS.replace("REPO", f"file://{repo}"))
    for n, version in enumerate(VERSIONS, 1):
        cv.create_release("shop", version, {"web": f"registry.local/web@{digest(n)}"})
        cv.trigger("main", f"shop@{version}")

    rng = random.Random(20261203)
    kills = 0
    for _ in range(8):
        proc = engine(db, tmp_path)
        time.sleep(rng.uniform(0.8, 2.2))  # start-up is ~0.5 s: kills land mid-work
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        kills += 1
        if all(cv.show(f"shop@{v}").status != "running" for v in VERSIONS):
            break
    final = engine(db, tmp_path)
    try:
        deadline = time.monotonic() + 60
        while any(cv.show(f"shop@{v}").status == "running" for v in VERSIONS):
            assert time.monotonic() < deadline, [cv.show(f"shop@{v}").status for v in VERSIONS]
            time.sleep(0.1)
    finally:
        final.send_signal(signal.SIGTERM)
        final.wait(15)
    assert kills >= 2

    statuses = {v: cv.show(f"shop@{v}").status for v in VERSIONS}
    assert statuses["1.2.0"] == "succeeded", statuses
    assert set(statuses.values()) <= {"succeeded", "superseded"}, statuses

    # No commit made twice: one per promotion that changed an overlay, at most.
    trailers = git(
        repo,
        "log",
        "--format=%(trailers:key=Conveyor-Release,valueonly)"
        "%(trailers:key=Conveyor-Environment,valueonly)",
        "main",
    )
    pairs = Counter(tuple(block.split()) for block in trailers.split("\n\n") if block.strip())
    assert pairs and max(pairs.values()) == 1, pairs
    for version, status in statuses.items():
        if status == "succeeded":
            for env in ENVIRONMENTS:
                assert pairs[(f"shop@{version}", env)] == 1, (version, env, pairs)

    # Every run of a task is an attempt the store knows of (a re-run is a new attempt).
    runs = Counter((tmp_path / "runs.txt").read_text().splitlines())
    with cv.store.session() as s:
        notes = s.scalars(select(TaskRunRow).where(TaskRunRow.task == "note")).all()
        attempts = {(r.scope.split("/")[1], r.release_id): r.attempt for r in notes}
        assert all(r.status == "succeeded" for r in notes if r.attempt)
    by_version = {n: v for n, v in enumerate(VERSIONS, 1)}
    for (env, release_id), attempt in attempts.items():
        ran = runs[f"{env} {by_version[release_id]}"]
        assert 1 <= ran <= attempt, (env, release_id, ran, attempt)
    assert cv.verify_audit()[1] == []
    cv.close()
