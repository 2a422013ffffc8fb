"""Helpers for the CLI tests: the console script in a subprocess, the same app in this
process (`Cli`), and the definitions most CLI tests apply."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from ruamel.yaml import YAML
from typer.testing import CliRunner, Result

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
