"""`conveyor demo`: seed 000's quick start end to end, promoting through Kustomize overlays
in a local git repository (seed 004's layout), with SQLite."""

from __future__ import annotations

import hashlib
import json
import secrets
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

from rich.console import Console

from conveyor.cli import demo_files as f
from conveyor.cli.common import login
from conveyor.cli.render import release_view
from conveyor.engine.registry import default_registry
from conveyor.engine.service import Conveyor
from conveyor.errors import ConveyorError
from conveyor.model.access import Identity, Role, Scope
from conveyor.spec.schema import all_kinds_schema
from conveyor.store.db import open_store

FLOW = "multi-env-parallel-promotion"
VERSION = "1.0.0"
HISTORY = "health-history.csv"
SCHEMA = "conveyor.schema.json"


def conveyor_command(db: Path) -> list[str]:
    """This Conveyor's command line on `db`, for the demo's own tasks. There is no
    `python -m conveyor`: the installed script beside this interpreter, else its entry point."""
    script = Path(sys.executable).parent / "conveyor"
    if script.is_file():
        return [str(script), "--db", str(db)]
    entry = "from conveyor.cli.main import main; main()"
    return [sys.executable, "-c", entry, "--db", str(db)]


def write_workspace(root: Path) -> Path:
    """Definitions under root/conveyor, a bare git repo root/gitops.git, the smoke check,
    and a sample health history; qa's health reports go to root/conveyor.db."""
    defs = root / "conveyor"
    defs.mkdir(parents=True, exist_ok=True)
    # Editors with yaml-language-server complete and check the files against this.
    schema = all_kinds_schema(default_registry())
    (defs / SCHEMA).write_text(json.dumps(schema, indent=1) + "\n")
    files = {
        "product.yaml": f.PRODUCT,
        "environments.yaml": f.environments_yaml(),
        "flow.yaml": f.FLOW,
        "policies.yaml": f.policies_yaml(conveyor_command(root / "conveyor.db")),
    }
    for name, text in files.items():
        (defs / name).write_text(f"# yaml-language-server: $schema={SCHEMA}\n{text}")
    (root / "smoke.sh").write_text(f.SMOKE_SH)
    (root / HISTORY).write_text(f.HEALTH_HISTORY)
    if not (root / "gitops.git").exists():
        _git(root, "init", "-q", "--bare", "-b", "main", "gitops.git")
        seed = root / "seed"
        _git(root, "clone", "-q", "gitops.git", "seed")
        for rel, text in f.repository_files().items():
            (seed / rel).parent.mkdir(parents=True, exist_ok=True)
            (seed / rel).write_text(text)
        _git(seed, "add", "-A")
        _git(
            seed,
            "-c",
            "user.name=conveyor",
            "-c",
            "user.email=conveyor@localhost",
            "commit",
            "-qm",
            "Kustomize base and overlays for demo-trioapp",
        )
        _git(seed, "push", "-q", "origin", "HEAD:main")
    return defs


def _log(root: Path) -> str:
    done = subprocess.run(
        ["git", "--git-dir", str(root / "gitops.git"), "log", "--oneline", "-n", "20", "main"],
        capture_output=True,
        text=True,
    )
    return "\n".join(f"  {line}" for line in done.stdout.splitlines())


def _git(cwd: Path, *args: str) -> None:
    try:
        subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise ConveyorError("the demo needs git: install it (apt-get install git)") from None
    except subprocess.CalledProcessError as exc:
        raise ConveyorError(f"git {' '.join(args)} failed: {exc.stderr.strip()}") from None


def fake_digest(app: str, version: str) -> str:
    return "sha256:" + hashlib.sha256(f"{app}:{version}".encode()).hexdigest()


def approve_production(cv: Conveyor, ref: str, out: Console) -> None:
    """Production waits for a release manager: the demo makes one, who approves."""
    waiting = [n.environment for n in cv.show(ref).nodes if n.state == "waiting"]
    if "ada" not in dict(cv.users()):
        cv.add_user("ada", ["release-managers"])
        cv.grant("group:release-managers", Role.APPROVER, Scope(labels=(("tier", "prod"),)))
    ada = Conveyor(cv.store, cv.clock, cv.registry, Identity("ada", local=False), cv.workdir)
    for env in waiting:
        ada.approve(f"{ref}/{env}", "demo: looks good")
    out.print(
        f"  {', '.join(waiting)} waited for a release manager's approval; "
        "ada (group release-managers) approved\n"
    )
    cv.run_until_idle()


def run_demo(directory: Path | None, out: Console) -> Path:
    root = (directory or Path(tempfile.mkdtemp(prefix="conveyor-demo-"))).resolve()
    root.mkdir(parents=True, exist_ok=True)
    defs = write_workspace(root)
    db = root / "conveyor.db"
    cv = Conveyor(open_store(f"sqlite:///{db}"), actor=f"local:{login()}", workdir=root)
    out.print(f"[bold]Conveyor quick start[/bold] in {root}\n")
    for d, what in cv.apply([defs]):
        out.print(f"  {d.ref} {what}")
    version = VERSION
    existing = {r.version for r in cv.list_releases("demo-trioapp")}
    while version in existing:  # a second run in the same --dir promotes a newer release
        major, minor, patch = version.split(".")
        version = f"{major}.{minor}.{int(patch) + 1}"
    artifacts = {a: f"registry.local/demo-trioapp/{a}@{fake_digest(a, version)}" for a in f.APPS}
    cv.create_release("demo-trioapp", version, artifacts, {"qa-signoff": "passed"})
    ref = f"demo-trioapp@{version}"
    cv.trigger(FLOW, ref)
    out.print(f"\n  release {ref} created and triggered on {FLOW}; running ...\n")
    cv.run_until_idle()
    approve_production(cv, ref, out)
    view = cv.show(ref)
    out.print(release_view(view, cv.clock.now(), width=out.width))
    prods = [n for n in view.nodes if n.environment.startswith("prod")]
    overlap = bool(prods) and max(n.started_at for n in prods if n.started_at) < min(
        n.finished_at for n in prods if n.finished_at
    )
    out.print(f"\n  prod, prod-eu and prod-asia ran in parallel: {'yes' if overlap else 'no'}")
    out.print("\n[bold]The promotions, as commits[/bold] (git log --oneline of gitops.git):")
    out.print(_log(root), markup=False, highlight=False)
    cmd = f"conveyor --db {db}"
    out.print(f"""
[bold]Try next[/bold] (from {root}, with Conveyor's virtual environment active:
`. .venv/bin/activate` in the project):
  {cmd} release show {ref} --logs      every task's output
  {cmd} flow show {FLOW} --format mermaid
  {cmd} policy explain demo-trioapp prod    which policy says what
  git --git-dir={root}/gitops.git log --oneline main    the promotions, as commits
  {cmd} audit verify                        the hash-chained audit trail
  {cmd} simulate demo-trioapp@3.0.0 --label qa-signoff=passed --history {root / HISTORY}
      a forecast from a recorded health history, on a copy of the store: promoted everywhere
  {cmd} simulate demo-trioapp@3.1.0 --label qa-signoff=passed --history {root / HISTORY}
      the same history, where 3.1.0 reports ERROR in qa: recalled, and why
""")
    cv.close()
    if view.status != "succeeded":
        raise ConveyorError(f"the demo release ended {view.status}: {view.message}")
    return root


def serve_demo(root: Path, port: int, out: Console) -> None:
    """Keep serving the demo's store on 127.0.0.1, with a user `demo` to look around as."""
    from conveyor.cli.serve import run_server

    cv = Conveyor(
        open_store(f"sqlite:///{root / 'conveyor.db'}"), actor=f"local:{login()}", workdir=root
    )
    if "demo" not in {name for name, _ in cv.users()}:
        cv.add_user("demo", ["release-managers"])
        cv.grant("user:demo", Role.ADMIN, Scope())  # to see every page, Settings too
    password = secrets.token_urlsafe(12)
    cv.set_password("demo", password)
    _, token = cv.create_token("demo", timedelta(days=1), "conveyor demo --serve")
    url = f"http://127.0.0.1:{port}"
    cmd = conveyor_command(root / "conveyor.db")[0]
    out.print(
        f"""
[bold]Serving the demo[/bold] at {url}
  in a browser: open {url}/ and log in as user demo, password {password}
  with the CLI:  export CONVEYOR_SERVER={url} CONVEYOR_TOKEN={token}
                 {cmd} status
  with curl:     curl -H "Authorization: Bearer $CONVEYOR_TOKEN" {url}/api/v1/releases
  the API's description: {url}/api/v1/openapi.json
Ctrl-C stops it.
""",
        markup=True,
        highlight=False,
    )
    try:
        run_server(cv, "127.0.0.1", port)
    finally:
        cv.close()
