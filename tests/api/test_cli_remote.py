"""`conveyor --server URL`: commands run by the server for the caller, with the same
output and exit codes; tokens from CONVEYOR_TOKEN or `conveyor login` (issue 12). The
README tour against a server is tests/docs/test_readme_tour.py."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from tests.api.conftest import Api
from tests.cli.inprocess import run_main
from tests.gitrepos import free_port


@pytest.fixture
def home(tmp_path: Path) -> dict[str, str | None]:
    """No token but what a test gives; `conveyor login` keeps its file under tmp_path."""
    return {
        "CONVEYOR_CONFIG_DIR": str(tmp_path / "config"),
        "CONVEYOR_TOKEN": None,
        "CONVEYOR_SERVER": None,
    }


def conveyor(
    api: Api, who: str | None, *args: str, cwd: Path, env: dict[str, str | None]
) -> subprocess.CompletedProcess[str]:
    token = {"CONVEYOR_TOKEN": api.tokens[who]} if who else {}
    return run_main(cwd, ["--server", api.url, *args], {**env, **token})


def test_commands_run_as_the_caller_with_local_exit_codes(
    api: Api, tmp_path: Path, home: dict[str, str | None]
) -> None:
    who = conveyor(api, "ci", "whoami", cwd=tmp_path, env=home)
    assert who.returncode == 0 and who.stdout.splitlines()[0] == "ci", who
    missing = conveyor(api, "ci", "release", "show", "shop@9.9.9", cwd=tmp_path, env=home)
    assert missing.returncode == 3
    assert "error: release shop@9.9.9 does not exist" in missing.stderr
    # A role-less user may not look; acting as someone else is an admin's privilege.
    looks = conveyor(api, "nobody", "status", cwd=tmp_path, env=home)
    assert looks.returncode == 5 and "nobody may not look" in looks.stderr
    acts = conveyor(api, "ci", "--as", "root", "get", "flows", cwd=tmp_path, env=home)
    assert acts.returncode == 5, acts
    as_ci = conveyor(api, "root", "--as", "ci", "whoami", cwd=tmp_path, env=home)
    assert as_ci.returncode == 0 and as_ci.stdout.startswith("root as ci\n"), as_ci


def test_usage_errors_and_help_never_leave_the_machine(
    api: Api, tmp_path: Path, home: dict[str, str | None]
) -> None:
    # No token is needed to be told the command line is wrong, or to read the help.
    wrong = conveyor(api, None, "get", "flows", "--bogus", cwd=tmp_path, env=home)
    assert wrong.returncode == 2 and "No such option: --bogus" in wrong.stderr
    helped = conveyor(api, None, "release", "show", "--help", cwd=tmp_path, env=home)
    assert helped.returncode == 0 and "Usage: conveyor release show" in helped.stdout
    anonymous = conveyor(api, None, "status", cwd=tmp_path, env=home)
    assert anonymous.returncode == 5
    assert f"no token for {api.url}: set CONVEYOR_TOKEN" in anonymous.stderr


def test_files_travel_with_the_command_and_errors_name_them_as_given(
    api: Api, tmp_path: Path, home: dict[str, str | None]
) -> None:
    (tmp_path / "defs").mkdir()
    (tmp_path / "defs" / "bad.yaml").write_text("kind: Product\n")
    relative = conveyor(api, "root", "apply", "-f", "defs", cwd=tmp_path, env=home)
    assert relative.returncode == 2, relative
    assert "error: defs/bad.yaml:1: field 'apiVersion'" in relative.stderr
    absolute = conveyor(api, "root", "apply", "-f", str(tmp_path / "defs"), cwd=tmp_path, env=home)
    assert f"error: {tmp_path}/defs/bad.yaml:1:" in absolute.stderr
    unreadable = conveyor(api, "root", "apply", "-f", "nothing.yaml", cwd=tmp_path, env=home)
    assert unreadable.returncode == 2 and "cannot read nothing.yaml" in unreadable.stderr


def test_the_server_refuses_what_is_not_its_to_run(api: Api) -> None:
    with api.client("root") as client:
        for argv, why in [
            (["demo"], "`conveyor demo` runs on your machine"),
            (["--db", "/etc/x.db", "status"], "--db names a local database"),
        ]:
            refused = client.post("/api/v1/cli", json={"argv": argv})
            assert refused.status_code == 422 and why in refused.json()["detail"], argv
        escape = client.post(
            "/api/v1/cli",
            json={"argv": ["apply", "-f", "../up.yaml"], "files": {"../up.yaml": "x: 1"}},
        )
        assert escape.status_code == 422 and "not a file path" in escape.json()["detail"]
    with api.client(None) as anonymous:
        assert anonymous.post("/api/v1/cli", json={"argv": ["status"]}).status_code == 401


def test_login_keeps_a_checked_token_that_logout_forgets(
    api: Api, tmp_path: Path, home: dict[str, str | None]
) -> None:
    bad = run_main(tmp_path, ["login", api.url, "--token-stdin"], home, stdin="cvt_nope\n")
    assert bad.returncode == 5
    saved = tmp_path / "config" / "credentials.json"
    assert not saved.exists()
    good = run_main(
        tmp_path, ["login", api.url, "--token-stdin"], home, stdin=api.tokens["ci"] + "\n"
    )
    assert good.returncode == 0 and f"logged in to {api.url} as ci" in good.stdout
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert api.tokens["ci"] in saved.read_text()
    who = run_main(tmp_path, ["--server", api.url, "whoami"], home)
    assert who.stdout.startswith("ci"), who
    run_main(tmp_path, ["logout", api.url], home)
    assert api.tokens["ci"] not in saved.read_text()
    assert run_main(tmp_path, ["--server", api.url, "whoami"], home).returncode == 5


def test_a_server_that_does_not_answer_is_named(
    tmp_path: Path, home: dict[str, str | None]
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = run_main(tmp_path, ["--server", url, "status"], {**home, "CONVEYOR_TOKEN": "cvt_x"})
    assert done.returncode == 1 and f"cannot reach the server at {url}" in done.stderr
