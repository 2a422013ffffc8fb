"""`conveyor p2p promote` and `conveyor demo --registry` as a pipeline runs them: the
installed console script in a subprocess (exit codes, environment variable defaults,
output without a terminal) against real loopback registries; CliRunner for the help."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conveyor.cli.main import app
from tests.cli import inprocess
from tests.registries import inspect_digest, make_image, registry

# Retries in these tests need not wait out the real backoff.
pytestmark = pytest.mark.usefixtures("quick_retries")

CONVEYOR = str(Path(sys.executable).parent / "conveyor")
VARIABLES = (
    "SOURCE_REGISTRY",
    "SOURCE_STAGE",
    "DEST_REGISTRY",
    "REGISTRY",
    "DEST_STAGE",
    "SOURCE_AUTH_OVERRIDE",
    "DEST_AUTH_OVERRIDE",
)
FLAGS = {
    "--source-registry": "SOURCE_REGISTRY",
    "--source-stage": "SOURCE_STAGE",
    "--dest-registry": "DEST_REGISTRY",
    "--dest-stage": "DEST_STAGE",
    "--source-auth-override": "SOURCE_AUTH_OVERRIDE",
    "--dest-auth-override": "DEST_AUTH_OVERRIDE",
}
USER = "deployer"
PASSWORD = "Pr0d-p2p-s3cret-pass"
WRONG = "N0t-the-r1ght-pass-42"
ANSI = re.compile(r"\x1b\[")
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def conveyor(
    cwd: Path,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    process: bool = False,
) -> subprocess.CompletedProcess[str]:
    """The command with none of the p2p variables inherited, no docker config of the
    user's, and no colour forced: in this process, or with `process` in a subprocess."""
    drop = {*VARIABLES, "CONVEYOR_DATABASE_URL", "DOCKER_CONFIG", "FORCE_COLOR", "NO_COLOR"}
    given = {"HOME": str(cwd), "COLUMNS": "200", **(env or {})}
    if not process:
        return inprocess.run(cwd, args, {**dict.fromkeys(drop), **given})
    full = {k: v for k, v in os.environ.items() if k not in drop}
    full.update(given)
    return subprocess.run(
        [CONVEYOR, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[str]:
    with registry(tmp_path / "registry-locked", htpasswd=(USER, PASSWORD)) as host:
        yield host


@pytest.fixture
def built(tmp_path: Path, dev: str) -> str:
    """web:1.2.3 in dev's fast-feedback stage; its digest."""
    return make_image(dev, "fast-feedback/web", "1.2.3", workdir=tmp_path / "w", layers=2)


def pipeline_env(dev: str, prod: str, **more: str) -> dict[str, str]:
    return {
        "SOURCE_REGISTRY": dev,
        "SOURCE_STAGE": "fast-feedback",
        "DEST_REGISTRY": prod,
        "DEST_STAGE": "prod",
        **more,
    }


def test_help_lists_every_flag_with_its_variable() -> None:
    result = CliRunner().invoke(
        app, ["p2p", "promote", "--help"], env={"COLUMNS": "200", "TERM": "dumb"}
    )
    assert result.exit_code == 0, result.output
    for flag, variable in FLAGS.items():
        assert flag in result.output and variable in result.output, flag
    assert "REGISTRY" in result.output.replace("DEST_REGISTRY", "").replace("SOURCE_REGISTRY", "")
    assert "--force" in result.output and "--insecure" in result.output


def test_help_in_a_subprocess(tmp_path: Path) -> None:
    done = conveyor(tmp_path, "p2p", "promote", "--help")
    assert done.returncode == 0, done.stderr
    for flag, variable in FLAGS.items():
        assert flag in done.stdout and variable in done.stdout, flag


def test_missing_flags_exit_2_naming_flag_and_variable(tmp_path: Path) -> None:
    done = conveyor(tmp_path, "p2p", "promote", "web:1.2.3", "--insecure")
    assert done.returncode == 2, (done.stdout, done.stderr)
    for flag in ("--source-registry", "--source-stage", "--dest-registry", "--dest-stage"):
        assert flag in done.stderr and FLAGS[flag] in done.stderr, flag
    assert "Traceback" not in done.stderr

    only_stage = conveyor(
        tmp_path,
        "p2p",
        "promote",
        "web:1.2.3",
        env={"SOURCE_REGISTRY": "a:5000", "SOURCE_STAGE": "s", "DEST_REGISTRY": "b:5000"},
    )
    assert only_stage.returncode == 2
    assert "--dest-stage" in only_stage.stderr and "DEST_STAGE" in only_stage.stderr
    assert "--source-stage" not in only_stage.stderr


def test_an_image_without_a_tag_is_bad_input(tmp_path: Path) -> None:
    env = pipeline_env("127.0.0.1:1", "127.0.0.1:2")
    done = conveyor(tmp_path, "p2p", "promote", "web", "--insecure", env=env)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "IMAGE:TAG" in done.stderr


def test_promote_from_environment_variables(
    tmp_path: Path, dev: str, prod: str, built: str
) -> None:
    done = conveyor(
        tmp_path, "p2p", "promote", "web:1.2.3", "--insecure", env=pipeline_env(dev, prod)
    )
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert built in done.stdout
    assert f"{prod}/prod/web:1.2.3" in done.stdout
    assert inspect_digest(prod, "prod/web", "1.2.3") == built
    # not a terminal: one plain line a blob, no escape codes, no bars
    assert not ANSI.search(done.stdout + done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 3 and all(
        re.fullmatch(r"sha256:[0-9a-f]{64}: \d+ bytes", x) for x in lines
    )

    # again: nothing left to move
    again = conveyor(
        tmp_path, "p2p", "promote", "web:1.2.3", "--insecure", env=pipeline_env(dev, prod)
    )
    assert again.returncode == 0, again.stderr
    assert "0 bytes moved" in again.stdout


def test_flags_override_environment_variables(
    tmp_path: Path, dev: str, prod: str, built: str
) -> None:
    env = pipeline_env(dev, prod, SOURCE_STAGE="nowhere", DEST_STAGE="wrong")
    done = conveyor(
        tmp_path,
        "p2p",
        "promote",
        "web:1.2.3",
        "--source-stage",
        "fast-feedback",
        "--dest-stage",
        "staging",
        "--dest-registry",
        dev,
        "--insecure",
        env=env,
    )
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert inspect_digest(dev, "staging/web", "1.2.3") == built
    assert "0 bytes moved" in done.stdout  # same registry: mounted


def test_registry_is_the_destination_variable_too(
    tmp_path: Path, dev: str, prod: str, built: str
) -> None:
    env = pipeline_env(dev, prod)
    del env["DEST_REGISTRY"]
    env["REGISTRY"] = prod
    done = conveyor(tmp_path, "p2p", "promote", "web:1.2.3", "--insecure", env=env)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert inspect_digest(prod, "prod/web", "1.2.3") == built


def test_dest_registry_wins_over_registry(tmp_path: Path, dev: str, prod: str, built: str) -> None:
    env = pipeline_env(dev, prod, REGISTRY=dev)
    done = conveyor(tmp_path, "p2p", "promote", "web:1.2.3", "--insecure", env=env)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert f"{prod}/prod/web:1.2.3" in done.stdout
    assert inspect_digest(prod, "prod/web", "1.2.3") == built


def test_an_image_that_is_not_there_exits_3(
    tmp_path: Path, dev: str, prod: str, built: str
) -> None:
    done = conveyor(
        tmp_path, "p2p", "promote", "web:9.9.9", "--insecure", env=pipeline_env(dev, prod)
    )
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert "web" in done.stderr and "Traceback" not in done.stderr


def test_refused_credentials_exit_5_without_the_password(
    tmp_path: Path, dev: str, locked: str, built: str
) -> None:
    env = pipeline_env(dev, locked, DEST_AUTH_OVERRIDE=f"{USER}:{WRONG}")
    done = conveyor(tmp_path, "p2p", "promote", "web:1.2.3", "--insecure", env=env)
    assert done.returncode == 5, (done.stdout, done.stderr)
    assert WRONG not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr

    anonymous = conveyor(
        tmp_path, "p2p", "promote", "web:1.2.3", "--insecure", env=pipeline_env(dev, locked)
    )
    assert anonymous.returncode == 5, (anonymous.stdout, anonymous.stderr)

    # the right credentials, as a flag this time
    ok = conveyor(
        tmp_path,
        "p2p",
        "promote",
        "web:1.2.3",
        "--insecure",
        "--dest-auth-override",
        f"{USER}:{PASSWORD}",
        env=env,
    )
    assert ok.returncode == 0, (ok.stdout, ok.stderr)
    assert PASSWORD not in ok.stdout + ok.stderr
    assert inspect_digest(locked, "prod/web", "1.2.3", auth=(USER, PASSWORD)) == built


def test_a_tag_pointing_elsewhere_exits_4_unless_forced(
    tmp_path: Path, dev: str, prod: str, built: str
) -> None:
    other = make_image(prod, "prod/web", "1.2.3", workdir=tmp_path / "w", seed=9)
    assert other != built
    env = pipeline_env(dev, prod)
    done = conveyor(tmp_path, "p2p", "promote", "web:1.2.3", "--insecure", env=env)
    assert done.returncode == 4, (done.stdout, done.stderr)
    assert built in done.stderr and other in done.stderr
    assert inspect_digest(prod, "prod/web", "1.2.3") == other

    forced = conveyor(tmp_path, "p2p", "promote", "web:1.2.3", "--insecure", "--force", env=env)
    assert forced.returncode == 0, (forced.stdout, forced.stderr)
    assert inspect_digest(prod, "prod/web", "1.2.3") == built


def test_plain_http_needs_insecure(tmp_path: Path, dev: str, prod: str, built: str) -> None:
    done = conveyor(tmp_path, "p2p", "promote", "web:1.2.3", env=pipeline_env(dev, prod))
    assert done.returncode != 0, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr


def test_registry_demo(tmp_path: Path) -> None:
    done = conveyor(
        tmp_path, "demo", "--registry", "--dir", str(tmp_path / "demo"), timeout=120, process=True
    )
    assert done.returncode == 0, (done.stdout, done.stderr)
    lines = done.stdout.splitlines()
    ext = [x for x in lines if x.strip().startswith("extended-test") and "bytes moved" in x]
    assert ext and all("0 bytes moved" in x for x in ext), lines
    assert any(x.strip().startswith("prod") and "functional test ok" in x for x in lines), lines
    prod = [x for x in lines if x.strip().startswith("prod") and "bytes moved" in x]
    assert prod and not any(" 0 bytes moved" in x for x in prod), lines
    assert DIGEST.search(done.stdout)


def test_source_credentials_and_stages_with_slashes(tmp_path: Path, prod: str) -> None:
    with registry(tmp_path / "locked-src", htpasswd=(USER, PASSWORD)) as src:
        digest = make_image(
            src, "ff/web", "2.0", workdir=tmp_path / "w", auth=(USER, PASSWORD), seed=3
        )
        env = pipeline_env(src, prod, SOURCE_STAGE="/ff/", DEST_STAGE="team/prod/")
        anonymous = conveyor(tmp_path, "p2p", "promote", "web:2.0", "--insecure", env=env)
        assert anonymous.returncode == 5, (anonymous.stdout, anonymous.stderr)
        env["SOURCE_AUTH_OVERRIDE"] = f"{USER}:{PASSWORD}"
        done = conveyor(tmp_path, "p2p", "promote", "web:2.0", "--insecure", env=env)
        assert done.returncode == 0, (done.stdout, done.stderr)
        assert PASSWORD not in done.stdout + done.stderr
    assert inspect_digest(prod, "team/prod/web", "2.0") == digest


@pytest.mark.parametrize(
    ("variable", "flag"),
    [
        ("SOURCE_AUTH_OVERRIDE", "--source-auth-override"),
        ("DEST_AUTH_OVERRIDE", "--dest-auth-override"),
    ],
)
def test_a_malformed_auth_override_is_bad_input_naming_which(
    tmp_path: Path, variable: str, flag: str
) -> None:
    env = pipeline_env("127.0.0.1:1", "127.0.0.1:2", **{variable: f"{USER}:"})
    done = conveyor(tmp_path, "p2p", "promote", "web:1.2.3", "--insecure", env=env)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "empty user or password" in done.stderr
    # which of the two overrides is wrong: the flag or its variable must be named
    assert flag in done.stderr or variable in done.stderr, done.stderr
