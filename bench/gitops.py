"""GitOps promotion: one release to 50 Kustomize overlays of one repository.

Conveyor (50 parallel promotions, one working copy, `batch: true`) against the naive way
(for each environment: clone, edit, commit, push, one after another), in the same run on
the same kind of repository. Prints both times, their ratio, the commits that reached the
remote and how many environments lost their update. Goal: ratio <= 0.2, lost = 0.

    .venv/bin/python bench/gitops.py [--envs 50]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from conveyor.clock import SystemClock
from conveyor.engine.service import Conveyor
from conveyor.spec import load_text
from conveyor.store.db import open_store

OLD = "sha256:" + "0" * 64
NEW = "sha256:" + "1" * 64
KUSTOMIZATION = """\
# Overlay for {env}
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../base
images:
  - name: web-app
    newName: registry.local/web-app
    digest: {digest}
"""
IDENTITY = ["-c", "user.name=bench", "-c", "user.email=bench@localhost"]


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *IDENTITY, *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def envs(n: int) -> list[str]:
    return [f"env-{i:02d}" for i in range(n)]


def make_repo(root: Path, names: list[str]) -> Path:
    bare = root / "ops.git"
    git(root, "init", "-q", "--bare", "-b", "main", str(bare))
    seed = root / "seed"
    git(root, "clone", "-q", str(bare), str(seed))
    base = seed / "apps/web-app/base"
    base.mkdir(parents=True)
    (base / "kustomization.yaml").write_text("resources:\n  - deployment.yaml\n")
    for env in names:
        overlay = seed / "apps/web-app/overlays" / env
        overlay.mkdir(parents=True)
        (overlay / "kustomization.yaml").write_text(KUSTOMIZATION.format(env=env, digest=OLD))
    git(seed, "add", "-A")
    git(seed, "commit", "-qm", "start")
    git(seed, "push", "-q", "origin", "HEAD:main")
    return bare


def check(bare: Path, names: list[str]) -> tuple[int, int]:
    """Commits after the first, and environments whose overlay does not have the new digest."""
    commits = len(git(bare, "rev-list", "main").split()) - 1
    lost = sum(
        NEW not in git(bare, "show", f"main:apps/web-app/overlays/{env}/kustomization.yaml")
        for env in names
    )
    return commits, lost


def naive(root: Path, names: list[str]) -> float:
    bare = make_repo(root, names)
    start = time.perf_counter()
    for env in names:
        work = root / f"naive-{env}"
        git(root, "clone", "-q", f"file://{bare}", str(work))
        path = work / "apps/web-app/overlays" / env / "kustomization.yaml"
        path.write_text(path.read_text().replace(OLD, NEW))
        git(work, "commit", "-qam", f"Promote web-app to {env}")
        git(work, "push", "-q", "origin", "HEAD:main")
    took = time.perf_counter() - start
    commits, lost = check(bare, names)
    print(f"naive: {took:.3f} s, {commits} commits, {lost} lost")
    return took


def definitions(bare: Path, names: list[str]) -> str:
    docs = [
        "apiVersion: conveyor.dev/v1\nkind: Product\nmetadata: {name: web}\n"
        "spec: {artifacts: [{name: web-app, type: image}]}\n",
        "apiVersion: conveyor.dev/v1\nkind: Environment\nmetadata: {name: build}\nspec: {}\n",
    ]
    docs += [
        f"apiVersion: conveyor.dev/v1\nkind: Environment\nmetadata: {{name: {env}, "
        "labels: {fan: out}}\nspec: {type: production}\n"
        for env in names
    ]
    nodes = "".join(f"    - {{name: {env}, dependsOn: [build]}}\n" for env in names)
    docs.append(
        "apiVersion: conveyor.dev/v1\nkind: PromotionFlow\nmetadata: {name: fleet}\nspec:\n"
        '  version: "1.00"\n  product: web\n  triggerEnvironment: build\n'
        f"  environments:\n{nodes}"
    )
    docs.append(
        "apiVersion: conveyor.dev/v1\nkind: PromotionPolicy\nmetadata: {name: deploy}\nspec:\n"
        "  selector: {environments: {labels: {fan: out}}}\n"
        "  workflow:\n    steps:\n      - name: deploy\n        tasks:\n"
        "          - name: overlay\n            uses: git.kustomize-set-image\n"
        f"            with: {{repo: 'file://{bare}', batch: true, image: web-app,\n"
        "                   path: 'apps/web-app/overlays/${{ environment.name }}',\n"
        "                   digest: '${{ artifacts.web-app.digest }}'}\n"
    )
    return "---\n".join(docs)


def conveyor(root: Path, names: list[str]) -> tuple[float, int]:
    """Its time, and how many environments lost their update."""
    bare = make_repo(root, names)
    cv = Conveyor(open_store(f"sqlite:///{root / 'bench.db'}"), clock=SystemClock(), workdir=root)
    cv.apply(docs=load_text(definitions(bare, names), "bench.yaml"))
    cv.create_release("web", "1.0.0", {"web-app": f"registry.local/web-app@{NEW}"})
    cv.engine.runner.wait_ready(timeout=10)  # up before the release, as `conveyor engine` is
    start = time.perf_counter()
    cv.trigger("fleet", "web@1.0.0")
    cv.run_until_idle()
    took = time.perf_counter() - start
    status = cv.show("web@1.0.0").status
    cv.close()
    commits, lost = check(bare, names)
    print(f"conveyor: {took:.3f} s, {commits} commits, {lost} lost, release {status}")
    if status != "succeeded":
        raise SystemExit(f"the release ended {status}")
    return took, lost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=50)
    args = parser.parse_args()
    names = envs(args.envs)
    with tempfile.TemporaryDirectory(prefix="conveyor-gitops-") as a:
        naive_s = naive(Path(a), names)
    with tempfile.TemporaryDirectory(prefix="conveyor-gitops-") as b:
        conveyor_s, lost = conveyor(Path(b), names)
    print(
        f"RESULT ratio={conveyor_s / naive_s:.3f} conveyor_s={conveyor_s:.3f} "
        f"naive_s={naive_s:.3f} envs={args.envs} lost={lost}"
    )


if __name__ == "__main__":
    main()
