"""`conveyor simulate`: forecasts from a health history on a scratch copy of a real SQLite
store, driven by a controllable clock (no test sleeps)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conveyor.cli.errors import exit_code
from conveyor.clock import ManualClock, SystemClock
from conveyor.engine.reconciler import Engine
from conveyor.errors import ConveyorError, DefinitionError, NotFound
from tests.cli.helpers import Cli, applied, conveyor
from tests.cli.simulations import (
    DEFS,
    ERRORS,
    FLOW,
    HEADER,
    HEALTHY,
    RECALL,
    STEADY,
    TIMED,
    history,
    lines,
    real_store,
    snapshot,
)
from tests.conftest import DIGEST


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return applied(tmp_path, DEFS.replace("TOUCHED", str(tmp_path / "touched.txt")))


@pytest.fixture
def no_passes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts engine passes: a refused history must stop everything before the first."""
    passes: list[int] = []
    real = Engine.run_pass

    def counted(self: Engine) -> object:
        passes.append(1)
        return real(self)

    monkeypatch.setattr(Engine, "run_pass", counted)
    return passes


# --- forecasts ----------------------------------------------------------------------------


def test_healthy_history_promotes_prod_at_the_hand_computed_time(tmp_path: Path, cli: Cli) -> None:
    text = cli("simulate", "shop@1.0.0", "--history", history(tmp_path, HEALTHY))
    assert text.startswith("Simulated shop@1.0.0 on flow main from 2026-01-05 09:00 UTC for 14d")
    assert "4 of 5 health reports" in text  # finished at 12:20, before the 13:00 report
    assert lines(text) == {
        "dev": "promoted 2026-01-05 09:00 UTC (+0s)",
        "qa": "promoted 2026-01-05 09:00 UTC (+0s)",
        "prod": "promoted 2026-01-05 12:20 UTC (+3h20m)",
    }
    assert text.rstrip().endswith("release shop@1.0.0: succeeded 2026-01-05 12:20 UTC (+3h20m)")
    assert not (tmp_path / "touched.txt").exists()  # no task really ran

    data = json.loads(
        cli("simulate", "shop@1.0.0", "--history", history(tmp_path, HEALTHY), "-o", "json")
    )
    assert data["status"] == "succeeded" and data["stopped"] == "release finished"
    prod = data["environments"][2]
    assert prod["environment"] == "prod" and prod["outcome"] == "promoted"
    assert prod["at"] == "2026-01-05T12:20:00Z" and prod["afterSeconds"] == 12000
    assert prod["heldReason"] == (
        "0 of 1 entities in qa healthy for 2h; need 1 for 2h at 95% healthy"
    )


def test_error_stretches_recall_and_roll_back_to_the_release_before(
    tmp_path: Path, cli: Cli
) -> None:
    # A week earlier, for real: 0.9.0 healthy in qa, promoted everywhere.
    cv = real_store(tmp_path, ManualClock(datetime(2025, 12, 29, 9, tzinfo=UTC)))
    cv.create_release("shop", "0.9.0", {"web": f"registry.local/web@{DIGEST}"})
    cv.trigger("main", "shop@0.9.0")
    cv.report_health("qa", "cluster-a", "n1", True, "HEALTHY", "0.9.0")
    cv.run_until_idle()
    assert cv.show("shop@0.9.0").status == "succeeded"
    cv.close()
    (tmp_path / "touched.txt").unlink()

    text = cli("simulate", "shop@1.0.0", "--history", history(tmp_path, ERRORS))
    at = "2026-01-05 10:32:37 UTC (+1h32m)"
    assert lines(text) == {
        "dev": f"recalled {at}: {RECALL}; rolled back to 0.9.0 {at}",
        "qa": f"recalled {at}: {RECALL}; rolled back to 0.9.0 {at}",
        "prod": f"skipped {at}: the release was recalled; held until then: 0 of 1 entities "
        "in qa healthy for 2h; need 1 for 2h at 95% healthy",
    }
    assert text.rstrip().endswith(f"release shop@1.0.0: recalled {at}: {RECALL}")
    assert not (tmp_path / "touched.txt").exists()

    data = json.loads(
        cli("simulate", "shop@1.0.0", "--history", history(tmp_path, ERRORS), "-o", "json")
    )
    assert data["finishedAt"] == "2026-01-05T10:32:37.894Z"
    assert data["message"] == RECALL
    qa = data["environments"][1]
    assert (qa["outcome"], qa["rolledBackTo"]) == ("recalled", "0.9.0")


def test_what_if_it_started_now_with_timed_gates(tmp_path: Path) -> None:
    cli = applied(tmp_path, TIMED, "timed.yaml")
    # dev soaks 30m from the release's creation, qa 3h after dev, prod 2d after qa.
    text = cli("simulate", "shop@2.0.0", "--start", "2026-01-09T17:00:00Z")
    assert lines(text) == {
        "dev": "promoted 2026-01-09 17:30 UTC (+30m)",
        "qa": "promoted 2026-01-09 20:30 UTC (+3h30m)",
        "prod": "promoted 2026-01-11 20:30 UTC (+2d3h)",
    }
    assert "no history" in text

    short = cli("simulate", "shop@2.0.0", "--start", "2026-01-09T17:00:00Z", "--for", "1d")
    assert lines(short)["prod"] == "held since 2026-01-09 20:30 UTC (+3h30m): soak 2d in qa"
    assert short.rstrip().endswith(
        "release shop@2.0.0: running (stopped at 2026-01-10 17:00 UTC (+1d): time limit)"
    )

    # Without --start it starts now (the system clock, read once).
    before = SystemClock().now()
    data = json.loads(cli("simulate", "shop@2.0.0", "-o", "json"))
    after = SystemClock().now()
    start = datetime.fromisoformat(data["start"])
    assert before <= start <= after
    prod = data["environments"][2]
    assert prod["afterSeconds"] == timedelta(days=2, hours=3, minutes=30).total_seconds()
    assert cli("release", "list").count("shop@") == 0  # the release exists only in the copy


def test_a_running_release_continues_from_its_state(tmp_path: Path, cli: Cli) -> None:
    cv = real_store(tmp_path, ManualClock(datetime(2026, 1, 5, 9, tzinfo=UTC)))
    cv.create_release("shop", "1.0.0", {"web": f"registry.local/web@{DIGEST}"})
    cv.trigger("main", "shop@1.0.0")
    cv.run_until_idle()  # dev and qa deployed; prod waits for health that never came
    assert [n.state for n in cv.show("shop@1.0.0").nodes] == ["succeeded", "succeeded", "waiting"]
    cv.close()

    text = cli("simulate", "shop@1.0.0", "--history", history(tmp_path, STEADY))
    assert lines(text)["prod"] == "promoted 2026-01-05 11:00 UTC (+2h)"
    shown = cli("release", "show", "shop@1.0.0", "-o", "json")
    assert '"state": "waiting"' in shown  # the real one has not moved


def test_a_created_release_is_triggered_on_its_products_flow(tmp_path: Path, cli: Cli) -> None:
    cli("release", "create", "shop", "--version", "1.0.0", "--artifact", f"web=r/web@{DIGEST}")
    steady = history(tmp_path, STEADY)
    assert lines(cli("simulate", "shop@1.0.0", "--history", steady))["prod"].startswith(
        "promoted 2026-01-05 11:00 UTC"
    )
    (tmp_path / "alt.yaml").write_text(FLOW.replace("{name: main}", "{name: alt}"))
    cli("apply", "-f", str(tmp_path / "alt.yaml"))
    exc = cli.error("simulate", "shop@1.0.0", "--history", steady)
    assert "field '--flow': shop has several flows (alt, main): choose one" in str(exc)
    on_alt = cli("simulate", "shop@1.0.0", "--history", steady, "--flow", "alt")
    assert "on flow alt" in on_alt and "promoted 2026-01-05 11:00 UTC" in on_alt
    assert "created" in cli("release", "list")  # triggered in the copy only


def test_the_real_store_is_not_changed(tmp_path: Path, cli: Cli) -> None:
    db = tmp_path / "conveyor.db"
    before = snapshot(db)
    audit = cli("audit", "verify")
    for text in (HEALTHY, ERRORS):
        cli("simulate", "shop@1.0.0", "--history", history(tmp_path, text), "--label", "a=b")
    assert snapshot(db) == before
    assert cli("audit", "verify") == audit
    assert "shop@" not in cli("release", "list")
    shown = cli("health", "show", "qa", "--release", "shop@1.0.0")
    assert shown.startswith("cluster-a: pending  soak 0s"), shown  # declared, never reported


# --- refusals -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "where", "message"),
    [
        ("h.csv", STEADY + "2026-01-05T10:00:00Z,qa,cluster-a,n1,true,GREAT,1.0.0\n",
         "h.csv:3: field 'state'", "unknown health state 'GREAT': use one of HEALTHY"),
        ("h.csv", HEADER + "2026-01-05T09:00:00Z,qa,cluster-z,n1,true,HEALTHY,1.0.0\n",
         "h.csv:2: field 'entity'", "unknown entity 'cluster-z' in qa (declared: cluster-a)"),
        ("h.csv", HEADER + "2026-01-05T09:00:00Z,staging,e,n1,true,HEALTHY,1.0.0\n",
         "h.csv:2: field 'environment'", "Environment/staging does not exist"),
        ("h.csv", HEADER + "2026-01-05T09:00:00,qa,cluster-a,n1,true,HEALTHY,1.0.0\n",
         "h.csv:2: field 'time'", "has no timezone: add an offset"),
        ("h.csv", HEADER + "2026-01-05T09:00:00Z,qa,cluster-a,n1,yes,HEALTHY,1.0.0\n",
         "h.csv:2: field 'live'", "live must be true or false, not 'yes'"),
        ("h.csv", HEADER + "2026-01-05T09:00:00Z,qa,cluster-a,n1,true\n",
         "h.csv:2: field 'line'", "7 values are needed"),
        ("h.csv", "when,environment,entity,node,live,state,version\n",
         "h.csv:1: field 'header'", "missing time, unknown when"),
        ("h.jsonl", '{"time": "2026-01-05T09:00:00Z", "environment": "qa", "entity": '
         '"cluster-a", "node": "n1", "live": true, "version": "1.0.0"}\n{"time": oops}\n',
         "h.jsonl:2: field 'line'", "not JSON"),
        ("h.jsonl", '{"time": "2026-01-05T09:00:00Z", "environment": "qa", "entity": '
         '"cluster-a", "node": "n1", "live": true, "version": 1}\n',
         "h.jsonl:1: field 'version'", "version must be given, as text"),
    ],
)  # fmt: skip
def test_a_malformed_history_is_refused_before_anything_runs(
    tmp_path: Path, cli: Cli, no_passes: list[int], name: str, text: str, where: str, message: str
) -> None:
    exc = cli.error("simulate", "shop@1.0.0", "--history", history(tmp_path, text, name))
    assert isinstance(exc, DefinitionError) and exit_code(exc) == 2
    assert where in str(exc) and message in str(exc), str(exc)
    assert no_passes == []


def test_a_good_jsonl_history_is_read_like_csv(tmp_path: Path, cli: Cli) -> None:
    rows = [line.split(",") for line in HEALTHY.splitlines()[1:]]
    keys = HEADER.strip().split(",")
    jsonl = "".join(
        json.dumps({**dict(zip(keys, row, strict=True)), "live": True}) + "\n" for row in rows
    )
    text = cli("simulate", "shop@1.0.0", "--history", history(tmp_path, jsonl, "h.jsonl"))
    assert lines(text)["prod"] == "promoted 2026-01-05 12:20 UTC (+3h20m)"


@pytest.mark.parametrize(
    ("args", "kind", "message"),
    [
        (("--for", "32d"), DefinitionError, "32d is over 31d"),
        (("--for", "soon"), DefinitionError, "'soon' is not a duration"),
        (("--start", "2026-01-05T09:00"), DefinitionError, "field '--start'"),
        (("--flow", "other"), NotFound, "PromotionFlow/other does not exist"),
        (("-o", "xml"), DefinitionError, "text, json or yaml"),
    ],
)
def test_option_errors(
    cli: Cli, args: tuple[str, ...], kind: type[ConveyorError], message: str
) -> None:
    exc = cli.error("simulate", "shop@1.0.0", *args)
    assert isinstance(exc, kind) and message in str(exc), str(exc)


def test_only_a_sqlite_or_postgresql_store_can_be_copied(tmp_path: Path) -> None:
    done = conveyor(
        tmp_path, "--db", "mysql://conveyor@localhost/conveyor", "simulate", "shop@1.0.0",
        db=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "is neither a SQLite file nor a PostgreSQL database" in done.stderr
    missing = conveyor(tmp_path, "--db", str(tmp_path / "none.db"), "simulate", "a@1", db=False)
    assert missing.returncode == 3 and "no database at" in missing.stderr
    assert not (tmp_path / "none.db").exists()


# --- the demo -----------------------------------------------------------------------------


def test_the_demo_workspace_forecasts_every_environment(tmp_path: Path) -> None:
    from conveyor.cli.demo import HISTORY, write_workspace

    defs = write_workspace(tmp_path)
    cli = Cli(tmp_path)
    cli("apply", "-f", str(defs))
    sample = str(tmp_path / HISTORY)
    envs = ["dev", "qa", "prod", "prod-eu", "prod-asia"]
    signed = ("--label", "qa-signoff=passed", "--history", sample)

    healthy = lines(cli("simulate", "demo-trioapp@3.0.0", *signed))
    assert list(healthy) == envs
    assert healthy["prod"] == "promoted 2026-01-05 09:00:02 UTC (+2s)"  # the 2s soak in qa
    assert all(line.startswith("promoted") for line in healthy.values())

    failing = lines(cli("simulate", "demo-trioapp@3.1.0", *signed))
    assert list(failing) == envs
    assert failing["qa"].startswith("recalled 2026-01-05 11:00 UTC (+2h): canary:")
    assert all(failing[env].startswith("skipped 2026-01-05 11:00") for env in envs[2:])


def test_the_cli_defaults_agree_with_the_replay() -> None:
    from conveyor.cli import simulate as cli
    from conveyor.engine import simulate as engine
    from conveyor.model.duration import parse_duration

    assert parse_duration(cli.DEFAULT_SPAN) == engine.DEFAULT_SPAN
    assert cli.MAX_PROBLEMS == engine.MAX_PROBLEMS
