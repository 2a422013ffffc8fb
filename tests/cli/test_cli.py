"""The `conveyor` command as a user runs it, for releases: the installed console script in a
subprocess (exit codes, stderr) and, where only the output matters, typer's CliRunner on
the same app (tests/cli/helpers.py).
"""

from __future__ import annotations

import getpass
import io
import json
import sqlite3
import subprocess
import time
from pathlib import Path

from conveyor.cli.errors import RELEASE_FAILED
from tests.cli.helpers import (
    ARTIFACT,
    ENVS,
    FAILING_POLICY,
    Cli,
    conveyor,
    lines_of,
    node_states,
    write_defs,
)
from tests.conftest import DIGEST


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
