"""The `conveyor` command as a user runs it: the installed console script in a subprocess
(exit codes, stderr) and, where only the output matters, typer's CliRunner on the same app.
"""

from __future__ import annotations

import getpass
import io
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner, Result

from conveyor.cli.errors import RELEASE_FAILED, exit_code
from conveyor.cli.main import app
from conveyor.errors import ConveyorError
from tests.cli import inprocess
from tests.conftest import BASE, DIGEST

CONVEYOR = str(Path(sys.executable).parent / "conveyor")
ARTIFACT = f"web=registry.local/web@{DIGEST}"
ENVS = ("dev", "qa", "prod", "prod-eu", "prod-asia")

FLOW = """\
apiVersion: conveyor.dev/v1
kind: PromotionFlow
metadata: {name: main}
spec:
  version: "1.00"
  product: shop
  triggerEnvironment: dev
  environments:
    - {name: qa, dependsOn: [dev]}
    - {name: prod, dependsOn: [qa]}
    - {name: prod-eu, dependsOn: [qa]}
    - {name: prod-asia, dependsOn: [qa]}
"""

POLICIES = """\
apiVersion: conveyor.dev/v1
kind: PromotionPolicy
metadata: {name: all}
spec:
  workflow:
    steps:
      - name: deploy
        tasks:
          - name: write
            uses: run
            with:
              args: [sh, -c, 'echo "deployed $0 $1"', "${{ environment.name }}",
                     "${{ release.version }}"]
---
apiVersion: conveyor.dev/v1
kind: PromotionPolicy
metadata: {name: production}
spec:
  priority: 10
  selector:
    environments: {types: [production]}
  gates:
    - releaseLabel: {key: qa-signoff, values: [passed]}
"""

# Fails until a file named `fixed` exists in the working directory.
FAILING_POLICY = """\
apiVersion: conveyor.dev/v1
kind: PromotionPolicy
metadata: {name: all}
spec:
  workflow:
    steps:
      - name: deploy
        tasks:
          - name: write
            uses: run
            with:
              args: [sh, -c, "test -e fixed || exit 1"]
"""

# Line 6 holds the unknown field.
BAD_ENV = """\
apiVersion: conveyor.dev/v1
kind: Environment
metadata: {name: staging}
spec:
  type: non-production
  colour: blue
"""


# --- helpers -----------------------------------------------------------------------------


def conveyor(
    cwd: Path,
    *args: str,
    extra_env: dict[str, str] | None = None,
    db: bool = True,
    process: bool = False,
) -> subprocess.CompletedProcess[str]:
    """The command with ./conveyor.db unless `db` is False: in this process, or with
    `process` the installed console script in a subprocess."""
    argv = [*(["--db", str(cwd / "conveyor.db")] if db else []), *args]
    if not process:
        env = {"CONVEYOR_DATABASE_URL": None, **(extra_env or {})}
        return inprocess.run(cwd, argv, env)
    full = {k: v for k, v in os.environ.items() if k != "CONVEYOR_DATABASE_URL"}
    full.update(extra_env or {})
    return subprocess.run(
        [CONVEYOR, *argv], capture_output=True, text=True, cwd=cwd, env=full, timeout=60
    )


class Cli:
    """The same app in this process, on tmp_path's database, for output-only checks."""

    def __init__(self, root: Path, db: str = "") -> None:
        self.root, self.db = root, db or str(root / "conveyor.db")
        self.runner = CliRunner()

    def invoke(self, *args: str) -> Result:
        return self.runner.invoke(
            app,
            ["--db", self.db, *args],
            env={"CONVEYOR_DATABASE_URL": None},
        )

    def __call__(self, *args: str) -> str:
        result = self.invoke(*args)
        assert result.exit_code == 0, (args, result.output, result.exception)
        return result.output

    def code(self, *args: str) -> tuple[int, str]:
        """The exit code of a command that ends without raising, and what it said."""
        result = self.invoke(*args)
        assert result.exception is None or isinstance(result.exception, SystemExit), result
        return result.exit_code, result.output

    def error(self, *args: str) -> ConveyorError:
        """What the command raised: `main()` turns a ConveyorError into its exit code, so
        anything else would be a traceback and exit 1."""
        result = self.invoke(*args)
        assert isinstance(result.exception, ConveyorError), (args, result.output, result.exception)
        return result.exception


def applied(root: Path, text: str, name: str = "defs.yaml") -> Cli:
    """The app on root's database, with the definitions in `text` applied (as `name`)."""
    (root / name).write_text(text)
    cli = Cli(root)
    cli("apply", "-f", str(root / name))
    return cli


def write_defs(root: Path, policies: str = POLICIES) -> Path:
    defs = root / "defs"
    defs.mkdir(exist_ok=True)
    (defs / "base.yaml").write_text(BASE)
    (defs / "flow.yaml").write_text(FLOW)
    (defs / "policies.yaml").write_text(policies)
    return defs


def yaml_docs(text: str) -> list[object]:
    return list(YAML(typ="safe", pure=True).load_all(io.StringIO(text)))


def lines_of(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def node_states(view: dict[str, object]) -> dict[str, str]:
    levels = view["levels"]
    assert isinstance(levels, list)
    return {n["environment"]: n["state"] for level in levels for n in level}


# --- definitions -------------------------------------------------------------------------


def test_apply_creates_then_is_unchanged_then_configures(tmp_path: Path, cli: Cli) -> None:
    defs = write_defs(tmp_path)
    first = conveyor(tmp_path, "apply", "-f", str(defs))
    assert first.returncode == 0, first.stderr
    expected = [
        "Product/shop",
        *(f"Environment/{e}" for e in ENVS),
        "PromotionFlow/main",
        "PromotionPolicy/all",
        "PromotionPolicy/production",
    ]
    assert sorted(lines_of(first.stdout)) == sorted(f"{r} created" for r in expected)

    again = cli("apply", "-f", str(defs))
    assert sorted(lines_of(again)) == sorted(f"{r} unchanged" for r in expected)

    (defs / "base.yaml").write_text(BASE.replace("overlay: overlays/prod}", "overlay: ov/prod}"))
    changed = cli("apply", "-f", str(defs))
    assert "Environment/prod configured" in lines_of(changed)
    assert sorted(line for line in lines_of(changed) if not line.endswith("unchanged")) == [
        "Environment/prod configured"
    ]

    (doc,) = yaml_docs(cli("get", "env", "prod", "-o", "yaml"))
    assert isinstance(doc, dict)
    assert doc["status"]["revision"] == 2
    assert doc["spec"]["settings"] == {"overlay": "ov/prod"}
    assert "revision: 2" in cli("get", "env", "prod", "-o", "yaml")
    (dev,) = yaml_docs(cli("get", "env", "dev", "-o", "yaml"))
    assert isinstance(dev, dict) and dev["status"]["revision"] == 1


def test_get_lists_and_shows_definitions(tmp_path: Path, cli: Cli) -> None:
    cli("apply", "-f", str(write_defs(tmp_path)))

    flows = cli("get", "flows")
    assert [line.split() for line in lines_of(flows)] == [
        ["kind", "name", "revision", "summary"],
        ["PromotionFlow", "main", "1", "version", "1.00"],
    ]
    envs = cli("get", "env")
    assert sorted(line.split()[1] for line in lines_of(envs)[1:]) == sorted(ENVS)
    policies = cli("get", "policy")
    assert "priority 10" in policies and "production" in policies

    doc = json.loads(cli("get", "PromotionFlow", "main", "-o", "json"))
    assert doc["kind"] == "PromotionFlow"
    assert doc["metadata"] == {"name": "main"}
    assert doc["status"]["revision"] == 1 and doc["status"]["appliedAt"].endswith("Z")
    assert doc["spec"]["product"] == "shop"
    assert [n["name"] for n in doc["spec"]["environments"]] == [
        "qa",
        "prod",
        "prod-eu",
        "prod-asia",
    ]

    stream = yaml_docs(cli("get", "env", "-o", "yaml"))
    assert sorted(d["metadata"]["name"] for d in stream if isinstance(d, dict)) == sorted(ENVS)


def test_schema_prints_json_schemas(cli: Cli) -> None:
    one = json.loads(cli("schema", "PromotionFlow"))
    assert one["title"] == "PromotionFlow"
    assert "spec" in one["properties"]
    assert one["properties"]["kind"] == {"const": "PromotionFlow"}

    every = json.loads(cli("schema"))
    kinds = ["Product", "Environment", "PromotionFlow", "PromotionPolicy", "NotificationSink"]
    assert every["properties"]["kind"] == {"enum": kinds}
    assert [c["if"]["properties"]["kind"]["const"] for c in every["allOf"]] == kinds
    for kind in kinds:
        assert "spec" in every["definitions"][kind]["properties"]


# --- bad input ---------------------------------------------------------------------------


def test_unknown_field_exits_2_names_file_line_field_and_applies_nothing(
    tmp_path: Path, cli: Cli
) -> None:
    defs = tmp_path / "defs"
    defs.mkdir()
    (defs / "base.yaml").write_text(BASE)  # valid, but must not be applied either
    (defs / "file.yaml").write_text(BAD_ENV)

    result = conveyor(tmp_path, "apply", "-f", str(defs))
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "file.yaml:6" in result.stderr
    assert "colour" in result.stderr
    assert "Traceback" not in result.stderr
    assert "created" not in result.stdout

    envs = cli("get", "env")
    assert lines_of(envs)[1:] == []
    assert "shop" not in cli("get", "product")


def test_release_error_exit_codes(tmp_path: Path, cli: Cli) -> None:
    cli("apply", "-f", str(write_defs(tmp_path)))
    cli("release", "create", "shop", "--version", "1.0.0", "--artifact", ARTIFACT)

    twice = conveyor(
        tmp_path, "release", "create", "shop", "--version", "1.0.0", "--artifact", ARTIFACT
    )
    assert twice.returncode == 4, (twice.stdout, twice.stderr)
    assert "error: release shop@1.0.0 already exists" in twice.stderr

    missing = conveyor(tmp_path, "release", "show", "nope@1.0.0")
    assert missing.returncode == 3, (missing.stdout, missing.stderr)
    assert "nope@1.0.0 does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr + twice.stderr

    bad_pair = conveyor(
        tmp_path, "release", "create", "shop", "--version", "2.0.0", "--artifact", "web"
    )
    assert bad_pair.returncode == 2, (bad_pair.stdout, bad_pair.stderr)
    assert "'web' is not KEY=VALUE" in bad_pair.stderr


def test_unknown_kind_is_a_usage_error_not_a_traceback(tmp_path: Path) -> None:
    result = conveyor(tmp_path, "get", "bogus", process=True)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, result.stderr
    assert "unknown kind 'bogus'" in result.stderr


@pytest.mark.parametrize(
    "args",
    [["get", "bogus"], ["schema", "bogus"], ["delete", "bogus", "x"]],
    ids=["get", "schema", "delete"],
)
def test_unknown_kind_raises_a_definition_error(cli: Cli, args: list[str]) -> None:
    exc = cli.error(*args)
    assert isinstance(exc, ConveyorError), repr(exc)  # else main() prints a traceback, exit 1
    assert exit_code(exc) == 2
    assert "unknown kind 'bogus'" in str(exc)


# --- releases ----------------------------------------------------------------------------


def test_release_create_trigger_run_show(tmp_path: Path, cli: Cli) -> None:
    cli("apply", "-f", str(write_defs(tmp_path)))

    created = conveyor(
        tmp_path,
        "release",
        "create",
        "shop",
        "--version",
        "1.0.0",
        "--artifact",
        ARTIFACT,
        "--label",
        "qa-signoff=passed",
    )
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "release shop@1.0.0 created"

    triggered = conveyor(tmp_path, "trigger", "main", "--release", "shop@1.0.0")
    assert triggered.returncode == 0, triggered.stderr
    assert triggered.stdout.strip() == "release shop@1.0.0 triggered on flow main"

    ran = conveyor(tmp_path, "run", "--until-idle")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "idle"

    shown = conveyor(tmp_path, "release", "show", "shop@1.0.0")
    assert shown.returncode == 0, shown.stderr
    head, zone, *rows = lines_of(shown.stdout)
    assert head.split()[:3] == ["Release", "shop@1.0.0", "succeeded"]
    assert "flow main v1.00" in head and zone.startswith("times in ")
    # the rows after the header, but the time axis under the timeline
    by_env = {r.lstrip("└ ").split()[0]: r for r in rows[1:-1]}
    assert sorted(by_env) == sorted(ENVS)
    assert all("succeeded" in r for r in by_env.values())
    assert "deployed" not in shown.stdout  # task output only with --logs

    logs = cli("release", "show", "shop@1.0.0", "--logs")
    for env in ENVS:
        assert f"deployed {env} 1.0.0" in logs
        assert f"── {env} step.deploy/write succeeded" in logs

    view = json.loads(cli("release", "show", "shop@1.0.0", "-o", "json"))
    assert view["status"] == "succeeded"
    assert view["labels"] == {"qa-signoff": "passed"}
    assert view["artifacts"]["web"]["digest"] == DIGEST
    assert node_states(view) == dict.fromkeys(ENVS, "succeeded")

    listed = cli("release", "list")
    assert [line.split()[:3] for line in lines_of(listed)] == [
        ["release", "status", "flow"],
        ["shop@1.0.0", "succeeded", "main"],
    ]
    assert lines_of(cli("release", "list", "other"))[1:] == []


def test_label_gate_waits_until_release_label_is_set(tmp_path: Path, cli: Cli) -> None:
    cli("apply", "-f", str(write_defs(tmp_path)))
    cli(
        "release",
        "create",
        "shop",
        "--version",
        "1.0.0",
        "--artifact",
        ARTIFACT,
        "--label",
        "qa-signoff=pending",
        "--label",
        "team=web",
    )
    cli("trigger", "main", "--release", "shop@1.0.0")
    cli("run", "--until-idle")

    view = json.loads(cli("release", "show", "shop@1.0.0", "-o", "json"))
    assert view["status"] == "running"
    states = node_states(view)
    assert {e: states[e] for e in ("dev", "qa")} == dict.fromkeys(("dev", "qa"), "succeeded")
    assert {states[e] for e in ("prod", "prod-eu", "prod-asia")} == {"waiting"}
    assert "qa-signoff" in cli("release", "show", "shop@1.0.0")  # the wait says why

    labelled = cli("release", "label", "shop@1.0.0", "qa-signoff=passed", "--remove", "team")
    assert labelled.strip() == "release shop@1.0.0 labelled"

    cli("run", "--until-idle")
    view = json.loads(cli("release", "show", "shop@1.0.0", "-o", "json"))
    assert view["labels"] == {"qa-signoff": "passed"}
    assert view["status"] == "succeeded"
    assert node_states(view) == dict.fromkeys(ENVS, "succeeded")


def test_terminate_a_running_release(tmp_path: Path, cli: Cli) -> None:
    cli("apply", "-f", str(write_defs(tmp_path)))
    cli("release", "create", "shop", "--version", "1.0.0", "--artifact", ARTIFACT)
    cli("trigger", "main", "--release", "shop@1.0.0")
    cli("run", "--until-idle")  # prod waits for the qa-signoff label
    assert json.loads(cli("release", "show", "shop@1.0.0", "-o", "json"))["status"] == "running"

    not_failed = conveyor(tmp_path, "release", "retry", "shop@1.0.0")
    assert not_failed.returncode == 4, (not_failed.stdout, not_failed.stderr)
    assert "only a failed release can be retried" in not_failed.stderr

    stopped = cli("release", "terminate", "shop@1.0.0")
    assert stopped.strip() == "release shop@1.0.0 terminated"

    view = json.loads(cli("release", "show", "shop@1.0.0", "-o", "json"))
    assert view["status"] == "terminated"
    states = node_states(view)
    assert states["dev"] == states["qa"] == "succeeded"
    assert {states[e] for e in ("prod", "prod-eu", "prod-asia")} == {"terminated"}

    again = conveyor(tmp_path, "release", "terminate", "shop@1.0.0")
    assert again.returncode == 4, (again.stdout, again.stderr)
    assert "already terminated" in again.stderr


def test_retry_a_failed_release(tmp_path: Path, cli: Cli) -> None:
    cli("apply", "-f", str(write_defs(tmp_path, FAILING_POLICY)))
    cli("release", "create", "shop", "--version", "1.0.0", "--artifact", ARTIFACT)
    cli("trigger", "main", "--release", "shop@1.0.0")
    code, said = cli.code("run", "--until-idle")
    assert code == RELEASE_FAILED
    assert "release shop@1.0.0 failed: dev: task write failed" in said

    view = json.loads(cli("release", "show", "shop@1.0.0", "-o", "json"))
    assert view["status"] == "failed"
    assert node_states(view)["dev"] == "failed"
    assert "dev" in view["message"]
    assert "failed" in cli("release", "show", "shop@1.0.0", "--logs")

    (tmp_path / "fixed").write_text("")
    retried = cli("release", "retry", "shop@1.0.0")
    assert retried.strip() == "release shop@1.0.0 resumed at dev"

    cli("run", "--until-idle")
    view = json.loads(cli("release", "show", "shop@1.0.0", "-o", "json"))
    assert view["status"] == "succeeded"
    assert node_states(view) == dict.fromkeys(ENVS, "succeeded")

    done = conveyor(tmp_path, "release", "retry", "shop@1.0.0")
    assert done.returncode == 4, (done.stdout, done.stderr)
    assert "is succeeded" in done.stderr


# --- flows, policies, audit --------------------------------------------------------------


def test_flow_show_formats(tmp_path: Path, cli: Cli) -> None:
    cli("apply", "-f", str(write_defs(tmp_path)))

    text = cli("flow", "show", "main")
    assert text == cli("flow", "show", "main", "--format", "text")
    assert text.splitlines() == [
        "main v1.00 (product shop)",
        "dev  (trigger)",
        " └─> qa",
        "      ├─> prod",
        "      ├─> prod-eu",
        "      └─> prod-asia",
        "",
    ]

    mermaid = cli("flow", "show", "main", "--format", "mermaid").splitlines()
    assert mermaid[0] == "flowchart LR"
    for edge in ("dev --> qa", "qa --> prod", "qa --> prod_eu", "qa --> prod_asia"):
        assert f"    {edge}" in mermaid
    assert '    prod_eu["prod-eu"]' in mermaid

    dot = cli("flow", "show", "main", "--format", "dot")
    assert dot.startswith('digraph "main" {')
    for edge in ('"dev" -> "qa";', '"qa" -> "prod";', '"qa" -> "prod-eu";', '"qa" -> "prod-asia";'):
        assert edge in dot
    assert dot.rstrip().endswith("}")


def test_flow_show_unknown_format_is_a_usage_error(tmp_path: Path, cli: Cli) -> None:
    cli("apply", "-f", str(write_defs(tmp_path)))
    result = conveyor(tmp_path, "flow", "show", "main", "--format", "png")
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, result.stderr
    assert "unknown format 'png'" in result.stderr


def test_policy_explain_names_where_each_field_came_from(tmp_path: Path, cli: Cli) -> None:
    cli("apply", "-f", str(write_defs(tmp_path)))

    prod = cli("policy", "explain", "shop", "prod")
    assert lines_of(prod)[0] == (
        "policies applied, in order: PromotionPolicy/all, PromotionPolicy/production"
    )
    assert "workflow  (from PromotionPolicy/all)" in prod
    assert "gates  (from PromotionPolicy/production)" in prod
    assert "qa-signoff" in prod

    dev = cli("policy", "explain", "shop", "dev")
    assert lines_of(dev)[0] == "policies applied, in order: PromotionPolicy/all"
    assert "workflow  (from PromotionPolicy/all)" in dev
    assert "PromotionPolicy/production" not in dev


def test_audit_verify_counts_events_and_detects_tampering(tmp_path: Path, cli: Cli) -> None:
    cli("apply", "-f", str(write_defs(tmp_path)))
    cli("release", "create", "shop", "--version", "1.0.0", "--artifact", ARTIFACT)
    db = tmp_path / "conveyor.db"
    with sqlite3.connect(db) as con:
        count, actors = con.execute(
            "select count(*), group_concat(distinct actor) from audit_events"
        ).fetchone()
    con.close()
    assert count > 0 and actors == f"local:{getpass.getuser()}"

    ok = cli("audit", "verify")
    assert ok.strip() == f"audit trail intact: {count} events"

    with sqlite3.connect(db) as con:
        con.execute("update audit_events set actor = 'mallory' where id = 1")
    con.close()
    broken = conveyor(tmp_path, "audit", "verify")
    assert broken.returncode == 6, (broken.stdout, broken.stderr)
    assert "intact" not in broken.stdout


# --- choosing the database ---------------------------------------------------------------


def test_db_option_and_environment_variable_select_the_database(tmp_path: Path) -> None:
    defs = write_defs(tmp_path)
    (tmp_path / "sub").mkdir()
    one, two = tmp_path / "sub" / "one.db", tmp_path / "two.db"

    applied = conveyor(tmp_path, "--db", str(one), "apply", "-f", str(defs), db=False)
    assert applied.returncode == 0, applied.stderr
    assert one.is_file()
    assert not (tmp_path / "conveyor.db").exists()

    via_env = {"CONVEYOR_DATABASE_URL": f"sqlite:///{two}"}
    made = conveyor(tmp_path, "init", extra_env=via_env, db=False)
    assert made.returncode == 0, made.stderr
    empty = conveyor(tmp_path, "get", "env", extra_env=via_env, db=False)
    assert empty.returncode == 0, empty.stderr
    assert two.is_file()
    assert "prod" not in empty.stdout  # a fresh database: nothing applied there
    assert not (tmp_path / "conveyor.db").exists()

    option_wins = conveyor(
        tmp_path, "--db", "sub/one.db", "get", "env", extra_env=via_env, db=False
    )
    assert option_wins.returncode == 0, option_wins.stderr
    assert "prod-asia" in option_wins.stdout


# --- the demo ----------------------------------------------------------------------------


def test_demo_promotes_through_every_environment(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    start = time.monotonic()
    result = conveyor(tmp_path, "demo", "--dir", str(root), db=False, process=True)
    took = time.monotonic() - start
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert took < 30, f"the demo took {took:.1f}s"

    out = result.stdout
    assert "Release demo-trioapp@1.0.0  succeeded" in out
    for env in ("prod", "prod-eu", "prod-asia"):
        assert f"└ {env}" in out
    assert "prod, prod-eu and prod-asia ran in parallel: yes" in out
    assert (root / "conveyor.db").is_file()

    assert "The promotions, as commits" in out
    git_dir = f"--git-dir={root / 'gitops.git'}"
    for env in ENVS:
        overlay = subprocess.run(
            ["git", git_dir, "show", f"main:apps/web-app/overlays/{env}/kustomization.yaml"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        for name in ("web", "api", "worker"):
            assert f"newName: registry.local/demo-trioapp/{name}" in overlay, (env, overlay)
        assert overlay.count("digest: sha256:") == 3, (env, overlay)
        assert 'newTag: "0.9.0"' not in overlay, (env, overlay)
        # Every environment's promotion is a commit that says so in its trailers.
        trailers = subprocess.run(
            [
                "git",
                git_dir,
                "log",
                "--format=%B",
                "-F",
                f"--grep=Conveyor-Environment: {env}",
                "main",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        assert "Conveyor-Release: demo-trioapp@1.0.0" in trailers, (env, trailers)


def test_show_logs_include_gate_results_and_watch_ends_with_the_release(
    tmp_path: Path,
) -> None:
    from rich.console import Console

    from conveyor.cli.demo import run_demo

    run_demo(tmp_path, Console(file=io.StringIO()))
    cli = Cli(tmp_path)
    shown = cli("release", "show", "demo-trioapp@1.0.0", "--logs")
    assert "entry/gate timed pass (soaked 2s in qa)" in shown
    assert "entry/gate releaseLabel pass (label qa-signoff=passed)" in shown
    watched = cli("release", "watch", "demo-trioapp@1.0.0")
    assert "succeeded" in watched and "prod-asia" in watched
