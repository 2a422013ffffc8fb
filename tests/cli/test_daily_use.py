"""The CLI as platform engineers use it every day and from CI: kubectl habits, exit codes
scripts can gate on, `status`, `audit log`, `release wait`, start-up without the engine."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conveyor import __version__
from conveyor.cli.errors import RELEASE_FAILED, RELEASE_RECALLED, WAIT_TIMED_OUT, exit_code
from conveyor.cli.main import app, hoist_global_options
from conveyor.errors import NotFound
from tests.cli.helpers import (
    ARTIFACT,
    FAILING_POLICY,
    Cli,
    conveyor,
    lines_of,
    write_defs,
    yaml_docs,
)
from tests.conftest import ME

RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def released(cli: Cli, root: Path, policies: str | None = None) -> None:
    """shop@1.0.0 created and triggered on `main` (not run yet)."""
    cli("apply", "-f", str(write_defs(root) if policies is None else write_defs(root, policies)))
    cli("release", "create", "shop", "--version", "1.0.0", "--artifact", ARTIFACT)
    cli("trigger", "main", "--release", "shop@1.0.0")


# --- global options, help, version ------------------------------------------------------


def test_global_options_are_accepted_after_the_command(tmp_path: Path, cli: Cli) -> None:
    cli("apply", "-f", str(write_defs(tmp_path)))
    db = str(tmp_path / "conveyor.db")
    result = CliRunner().invoke(app, ["get", "flows", "--db", db, "--as", "ci"])
    assert result.exit_code == 0, result.output
    assert "main" in result.output
    assert hoist_global_options(["get", "flows", "--db=x"]) == ["--db=x", "get", "flows"]
    # after `--`, nothing is an option any more
    assert hoist_global_options(["x", "--", "--db", "y"]) == ["x", "--", "--db", "y"]


def test_version_and_short_help_everywhere() -> None:
    runner = CliRunner()
    version = runner.invoke(app, ["--version"])
    assert version.exit_code == 0 and version.output.strip() == f"conveyor {__version__}"
    for args in (["-h"], ["get", "-h"], ["release", "wait", "-h"], ["p2p", "promote", "-h"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.output)
        assert result.output.startswith("Usage: "), args


def _commands(group: object, prefix: list[str]) -> list[list[str]]:
    import typer.main

    command = typer.main.get_command(app) if not prefix else group
    found = []
    for name, sub in getattr(command, "commands", {}).items():
        if getattr(sub, "commands", None):
            found += _commands(sub, [*prefix, name])
        else:
            found.append([*prefix, name])
    return found


def test_help_is_in_words_with_an_example_for_every_command() -> None:
    runner = CliRunner()
    commands = _commands(app, [])
    assert ["release", "wait"] in commands and ["audit", "log"] in commands
    for args in commands:
        text = runner.invoke(app, [*args, "--help"]).output
        assert "Example" in text, args
        # Python types and Typer's braces are not what a person types
        for leak in ("<", "{", " TEXT", " PATH", "list[", "INTEGER"):
            usage_and_options = text.split("Example")[0] + text.split("Options:")[-1]
            assert leak not in usage_and_options, (args, leak, text)


# --- definitions --------------------------------------------------------------------------


def test_apply_reads_stdin_and_get_yaml_applies_back_unchanged(tmp_path: Path, cli: Cli) -> None:
    defs = write_defs(tmp_path)
    cli("apply", "-f", str(defs / "base.yaml"))
    runner = CliRunner()
    db = ["--db", str(tmp_path / "conveyor.db")]
    piped = runner.invoke(app, [*db, "apply", "-f", "-"], input=(defs / "flow.yaml").read_text())
    assert piped.exit_code == 0, piped.output
    assert piped.output.strip() == "PromotionFlow/main created"
    cli("apply", "-f", str(defs))

    for kind, name in (("env", "prod"), ("flow", "main"), ("policy", "production")):
        text = cli("get", kind, name, "-o", "yaml")
        (doc,) = yaml_docs(text)
        assert isinstance(doc, dict) and doc["status"]["revision"] == 1
        (tmp_path / "back.yaml").write_text(text)
        assert lines_of(cli("apply", "-f", str(tmp_path / "back.yaml")))[0].endswith("unchanged")

    everything = cli("get", "all", "-o", "wide")
    kinds = {line.split()[0] for line in lines_of(everything)[1:]}
    assert kinds == {"Product", "Environment", "PromotionFlow", "PromotionPolicy"}
    assert "applied by" in everything and ME in everything


def test_a_missing_database_is_an_error_naming_it_and_nothing_is_created(
    tmp_path: Path, cli: Cli
) -> None:
    for args in (["get", "flows"], ["release", "list"], ["status"], ["audit", "log"]):
        exc = cli.error(*args)
        assert isinstance(exc, NotFound) and exit_code(exc) == 3
        assert str(tmp_path / "conveyor.db") in str(exc) and "conveyor init" in str(exc)
    assert not (tmp_path / "conveyor.db").exists()
    typo = conveyor(tmp_path, "--db", "prd.db", "get", "env", db=False, process=True)
    assert typo.returncode == 3 and "no database at prd.db" in typo.stderr
    assert not (tmp_path / "prd.db").exists()
    assert "database ready" in cli("init")
    assert cli("get", "flows").strip() == "kind  name  revision  summary"


# --- one JSON style -------------------------------------------------------------------------


def test_json_is_camel_case_with_rfc3339_utc_times(tmp_path: Path, cli: Cli) -> None:
    released(cli, tmp_path)
    cli("release", "label", "shop@1.0.0", "qa-signoff=passed")
    cli("run", "--until-idle")
    (listed,) = json.loads(cli("release", "list", "-o", "json"))
    assert listed["status"] == "succeeded" and "createdBy" in listed
    assert RFC3339_Z.match(listed["createdAt"]) and RFC3339_Z.match(listed["finishedAt"])
    view = json.loads(cli("release", "show", "shop@1.0.0", "-o", "json"))
    node = view["levels"][0][0]
    assert {"flowVersion", "createdAt", "releaseTasks"} <= set(view)
    assert {"startedAt", "finishedAt"} <= set(node) and RFC3339_Z.match(node["startedAt"])
    assert not [k for k in view if "_" in k]
    (claim, event, *_) = json.loads(cli("audit", "log", "-o", "json"))
    assert claim["action"] == "access.claim" and claim["actor"] == ME
    assert RFC3339_Z.match(event["at"]) and event["action"] == "apply"
    # yaml is the same data
    for args in (["release", "show", "shop@1.0.0"], ["release", "list"], ["status"]):
        as_json = json.loads(cli(*args, "-o", "json"))
        (as_yaml,) = yaml_docs(cli(*args, "-o", "yaml"))
        assert as_yaml == as_json, args


# --- what runs where -------------------------------------------------------------------------


def test_status_shows_what_runs_where_and_what_is_on_its_way(tmp_path: Path, cli: Cli) -> None:
    released(cli, tmp_path)
    cli("run", "--until-idle")  # prod environments wait for the label qa-signoff
    rows = {r["environment"]: r for r in json.loads(cli("status", "-o", "json"))}
    assert rows["qa"]["version"] == "1.0.0" and RFC3339_Z.match(rows["qa"]["since"])
    assert rows["prod"]["version"] is None
    (coming,) = rows["prod"]["incoming"]
    assert coming["version"] == "1.0.0" and coming["state"] == "waiting"
    assert "qa-signoff" in coming["detail"]
    table = lines_of(cli("status", "shop", "--utc"))
    assert table[0].split()[:3] == ["product", "environment", "running"]
    assert [line.split()[1] for line in table[1:]] == ["dev", "qa", "prod", "prod-eu", "prod-asia"]
    assert "UTC" in table[1] and "1.0.0 waiting: label qa-signoff" in table[3]


# --- the audit trail, readable --------------------------------------------------------------


def test_audit_log_filters_by_release_environment_actor_and_time(tmp_path: Path, cli: Cli) -> None:
    released(cli, tmp_path)
    cli("run", "--until-idle")
    cli("grant", "promoter", "--user", "alice")
    cli("--as", "alice", "release", "label", "shop@1.0.0", "qa-signoff=passed")

    def events(*args: str) -> list[dict[str, object]]:
        found = json.loads(cli("audit", "log", *args, "-o", "json"))
        assert isinstance(found, list)
        return found

    mine = events("--release", "shop@1.0.0")
    assert {e["action"] for e in mine} >= {"release.create", "release.trigger", "task.succeeded"}
    assert all(str(e["subject"]).startswith("shop@1.0.0") for e in mine)
    in_qa = events("--env", "qa")
    assert in_qa and all("/qa" in str(e["subject"]) for e in in_qa)
    (by_alice,) = events("--actor", "alice")
    assert by_alice["action"] == "release.label" and by_alice["actor"] == f"{ME} as alice"
    assert events("--since", "1h") and not events("--since", "2999-01-01T00:00:00Z")
    assert len(events("--limit", "3")) == 3
    table = cli("audit", "log", "--actor", "alice")
    assert "release.label" in table and "alice" in table
    assert exit_code(cli.error("audit", "log", "--since", "yesterday")) == 2


# --- exit codes for scripts -----------------------------------------------------------------


def test_release_wait_exit_codes(tmp_path: Path, cli: Cli) -> None:
    released(cli, tmp_path)
    assert cli.code("release", "wait", "shop@1.0.0", "--timeout", "0s")[0] == WAIT_TIMED_OUT
    cli("run", "--until-idle")
    code, said = cli.code("release", "wait", "shop@1.0.0", "--for", "qa", "--timeout", "0s")
    assert (code, said.strip()) == (0, "release shop@1.0.0 succeeded in qa")
    still = cli.code("release", "wait", "shop@1.0.0", "--timeout", "0s")
    assert still[0] == WAIT_TIMED_OUT and "waiting" not in still[1]  # running, not done
    assert exit_code(cli.error("release", "wait", "shop@1.0.0", "--for", "nowhere")) == 2
    cli("release", "label", "shop@1.0.0", "qa-signoff=passed")
    cli("run", "--until-idle")
    assert cli.code("release", "wait", "shop@1.0.0")[0] == 0
    assert cli.code("release", "watch", "shop@1.0.0")[0] == 0
    cli("release", "recall", "shop@1.0.0", "--reason", "bad")
    code, said = cli.code("release", "wait", "shop@1.0.0", "--for", "prod")
    assert code == RELEASE_RECALLED and "recalled: bad" in said
    assert cli.code("release", "watch", "shop@1.0.0")[0] == RELEASE_RECALLED


def test_a_failed_release_fails_run_wait_and_watch(tmp_path: Path, cli: Cli) -> None:
    released(cli, tmp_path, FAILING_POLICY)
    code, said = cli.code("run", "--until-idle")
    assert code == RELEASE_FAILED and "release shop@1.0.0 failed" in said
    assert cli.code("run", "--until-idle")[0] == 0  # nothing new failed in this run
    assert cli.code("release", "wait", "shop@1.0.0")[0] == RELEASE_FAILED
    assert cli.code("release", "wait", "shop@1.0.0", "--for", "prod")[0] == RELEASE_FAILED
    assert cli.code("release", "watch", "shop@1.0.0")[0] == RELEASE_FAILED


# --- start-up -------------------------------------------------------------------------------

HEAVY = ("sqlalchemy", "pydantic", "numpy", "httpx", "alembic", "conveyor.engine.reconciler")


@pytest.mark.parametrize("argv", [["--help"], ["get", "flows"], ["p2p", "promote", "--help"]])
def test_start_up_loads_no_engine_database_layer_or_numpy(
    tmp_path: Path, cli: Cli, argv: list[str]
) -> None:
    cli("apply", "-f", str(write_defs(tmp_path)))
    probe = (
        "import sys\n"
        f"sys.argv = ['conveyor', '--db', {str(tmp_path / 'conveyor.db')!r}, *{argv!r}]\n"
        "from conveyor.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print('LOADED', sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.splitlines()[-1] == "LOADED []", done.stdout
