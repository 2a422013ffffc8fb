"""`conveyor health report` and `conveyor health show`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conveyor.cli.errors import exit_code
from conveyor.errors import ConveyorError, DefinitionError, NotFound
from tests.cli.helpers import Cli, applied, conveyor
from tests.conftest import BASE
from tests.httpserver import Server

MONDAY = "2026-01-05T09:00:00Z"


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return applied(tmp_path, BASE)


def report(cli: Cli, node: str, state: str, at: str, *extra: str) -> str:
    return cli(
        "health", "report", "prod", "cluster-a", "--node", node, "--state", state,
        "--version", "1.0.0", "--at", at, *extra,
    )  # fmt: skip


def test_report_then_show(cli: Cli) -> None:
    assert "recorded" in report(cli, "n1", "HEALTHY", MONDAY)
    assert "already recorded" in report(cli, "n1", "healthy", "2026-01-05T10:00:00+01:00")
    report(cli, "n2", "ERROR", "2026-01-05T11:00:00Z", "--not-live")
    report(cli, "n2", "HEALTHY", "2026-01-05T12:00:00Z")

    shown = cli("health", "show", "prod", "--release", "shop@1.0.0", "--at", "2026-01-05T19:00Z")
    line = shown.strip()
    assert line.startswith("cluster-a: pending"), shown
    # n2 is not live before 12:00 (its first report is at 11:00): 7h of 10h healthy.
    assert "soak 10h" in line and "healthy 7h (70.0%, need >= 95.0%)" in line
    assert "unhealthy 0s (0.0%, limit 5.0%)" in line

    empty = cli("health", "show", "qa", "--release", "shop@1.0.0", "--at", MONDAY)
    assert "no health reports in qa yet" in empty


def test_show_json_parses(cli: Cli) -> None:
    report(cli, "n1", "HEALTHY", MONDAY)
    report(cli, "n1", "ERROR", "2026-01-05T18:00:00Z")
    out = cli(
        "health", "show", "prod", "--release", "shop@1.0.0", "--entity", "cluster-a",
        "-o", "json", "--at", "2026-01-05T19:00:00Z",
    )  # fmt: skip
    (entry,) = json.loads(out)
    assert entry == {
        "entity": "cluster-a",
        "firstSeen": "2026-01-05T09:00:00Z",
        "soakSeconds": 36000.0,
        "healthySeconds": 32400.0,
        "unhealthySeconds": 3600.0,
        "healthyRatio": 0.9,
        "unhealthyRatio": 0.1,
        "healthyThreshold": 0.95,
        "unhealthyThreshold": 0.05,
        "satisfiesHealthy": False,
        "unhealthyVerdict": True,
        "verdict": "unhealthy",
    }
    text = cli("health", "show", "prod", "--release", "shop@1.0.0", "--at", "2026-01-05T19:00Z")
    assert text.startswith("cluster-a: unhealthy")


def test_bad_state_exits_2(cli: Cli, tmp_path: Path) -> None:
    exc = cli.error(
        "health", "report", "prod", "cluster-a", "--node", "n1", "--state", "GREAT",
        "--version", "1.0.0",
    )  # fmt: skip
    assert isinstance(exc, DefinitionError) and exit_code(exc) == 2
    assert "unknown health state 'GREAT'" in str(exc)
    # The installed command, as a user runs it.
    done = conveyor(
        tmp_path, "health", "report", "prod", "cluster-a", "--node", "n1", "--state", "GREAT",
        "--version", "1.0.0",
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "unknown health state 'GREAT'" in done.stderr


@pytest.mark.parametrize(
    ("args", "kind", "message"),
    [
        (("report", "staging", "e", "--node", "n", "--version", "1"), NotFound, "staging"),
        (("report", "prod", "e", "--node", "n", "--version", "1", "--at", "noon"),
         DefinitionError, "is not an ISO 8601 time"),
        (("report", "prod", "e", "--node", "n", "--version", "1", "--at", "2026-01-05T09:00"),
         DefinitionError, "has no timezone"),
        (("show", "prod", "--release", "shop"), DefinitionError, "PRODUCT@VERSION"),
        (("show", "prod", "--release", "shop@1", "-o", "xml"), DefinitionError, "json or yaml"),
        (("show", "prod", "--release", "cart@1"), NotFound, "Product/cart"),
    ],
)  # fmt: skip
def test_errors(cli: Cli, args: tuple[str, ...], kind: type[ConveyorError], message: str) -> None:
    exc = cli.error("health", *args)
    assert isinstance(exc, kind) and message in str(exc)


def test_liveness_only_report(cli: Cli) -> None:
    assert "recorded" in cli(
        "health", "report", "prod", "cluster-a", "--node", "n1", "--version", "1.0.0",
        "--at", MONDAY,
    )  # fmt: skip
    shown = cli("health", "show", "prod", "--release", "shop@1.0.0", "--at", "2026-01-05T10:00Z")
    assert "cluster-a: healthy" in shown and "healthy 1h (100.0%" in shown


WEEKEND_DEFS = """
apiVersion: conveyor.dev/v1
kind: Product
metadata: {name: shop}
spec:
  timeZone: Asia/Tokyo
  rolloutCriteria: {weekendDays: [friday]}
---
apiVersion: conveyor.dev/v1
kind: Environment
metadata: {name: prod}
spec:
  entities: [{name: cluster-a}, {name: cluster-b}]
"""


def test_weekend_days_in_the_products_time_zone(tmp_path: Path) -> None:
    cli = applied(tmp_path, WEEKEND_DEFS)
    # Thursday 12:00 UTC is 21:00 in Tokyo; Friday there runs Thu 15:00 to Fri 15:00 UTC.
    report(cli, "n1", "HEALTHY", "2026-01-08T12:00:00Z")
    report(cli, "n1", "ERROR", "2026-01-09T14:00:00Z")
    out = cli(
        "health", "show", "prod", "--release", "shop@1.0.0", "-o", "json",
        "--at", "2026-01-09T17:00:00Z",
    )  # fmt: skip
    by_entity = {e["entity"]: e for e in json.loads(out)}
    # Counted: Thu 12:00-15:00 healthy (3h), Fri 15:00-17:00 unhealthy (2h); the Tokyo
    # Friday between is left out of the durations and of the soak alike.
    a = by_entity["cluster-a"]
    assert (a["soakSeconds"], a["healthySeconds"], a["unhealthySeconds"]) == (
        5 * 3600,
        3 * 3600,
        2 * 3600,
    )
    # A declared entity that never reported is listed, with no soak yet.
    b = by_entity["cluster-b"]
    assert (b["soakSeconds"], b["firstSeen"], b["verdict"]) == (0, None, "pending")
    exc = cli.error("health", "report", "prod", "cluster-c", "--node", "n1", "--version", "1.0.0")
    assert isinstance(exc, DefinitionError) and "unknown entity 'cluster-c'" in str(exc)


def test_probe_once_from_the_command_line(tmp_path: Path, server: Server) -> None:
    url = server.route("/healthz", 200, {"state": "deferring", "version": "v2.0.0"})
    defs = tmp_path / "defs.yaml"
    defs.write_text(
        WEEKEND_DEFS
        + f"""  health:
    probes:
      - {{entity: cluster-a, url: "{url}", field: state, versionField: version}}
"""
    )
    cli = Cli(tmp_path)
    cli("init")
    assert "no probes are defined" in cli("health", "probe")
    cli("apply", "-f", str(defs))
    said = cli("health", "probe")
    assert said.startswith(f"prod/cluster-a/probe {url}: ")
    assert "reported as version v2.0.0" in said  # stored as 2.0.0, as releases
    shown = json.loads(cli("health", "show", "prod", "--release", "shop@2.0.0", "-o", "json"))
    assert [e["entity"] for e in shown if e["firstSeen"]] == ["cluster-a"]


def test_show_by_entity_name(cli: Cli, tmp_path: Path) -> None:
    report(cli, "n1", "HEALTHY", MONDAY)
    at = ("--release", "shop@1.0.0", "--at", "2026-01-05T10:00Z")
    by_entity = cli("health", "show", "cluster-a", *at)
    assert by_entity == cli("health", "show", "prod", "--entity", "cluster-a", *at)
    assert by_entity.startswith("cluster-a: healthy  soak 1h")

    exc = cli.error("health", "show", "cluster-z", *at)
    assert isinstance(exc, NotFound) and "no environment or entity is named 'cluster-z'" in str(exc)
    # The same entity name in two environments: the command asks which.
    cli(
        "health", "report", "qa", "cluster-a", "--node", "n1", "--version", "1.0.0",
        "--at", MONDAY,
    )  # fmt: skip
    exc = cli.error("health", "show", "cluster-a", *at)
    assert isinstance(exc, DefinitionError)
    assert "entity 'cluster-a' is in prod, qa: say which" in str(exc)


def test_report_by_entity_alone(cli: Cli) -> None:
    report(cli, "n1", "HEALTHY", MONDAY)  # cluster-a registers in prod
    said = cli(
        "health", "report", "cluster-a", "--node", "n2", "--state", "ERROR", "--version",
        "1.0.0", "--at", "2026-01-05T10:00:00Z",
    )  # fmt: skip
    assert said.strip() == "health report of cluster-a/n2 in prod recorded"
    shown = cli(
        "health", "show", "cluster-a", "--release", "shop@1.0.0", "--at", "2026-01-05T11:00Z"
    )
    assert shown.startswith("cluster-a: unhealthy  soak 2h  healthy 0s")
    exc = cli.error("health", "report", "prod", "--node", "n1", "--version", "1.0.0")
    assert isinstance(exc, DefinitionError) and "'prod' is an environment" in str(exc)
    exc = cli.error("health", "report", "cluster-new", "--node", "n1", "--version", "1.0.0")
    assert isinstance(exc, NotFound)


def test_show_without_a_release_needs_one_deployed(cli: Cli) -> None:
    report(cli, "n1", "HEALTHY", MONDAY)
    exc = cli.error("health", "show", "prod")
    assert isinstance(exc, NotFound) and "name one with --release" in str(exc)
