"""Each command that writes signs the trail as it ends, so `audit verify` sees the last
events deleted with the database's own tools (issue 11)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.cli.helpers import ARTIFACT, Cli, conveyor, write_defs


def test_a_command_signs_what_it_wrote_and_verify_finds_the_tail_deleted(
    tmp_path: Path, cli: Cli
) -> None:
    cli("apply", "-f", str(write_defs(tmp_path)))
    checkpoints = tmp_path / "conveyor.db.audit" / "checkpoints.jsonl"
    applied = [json.loads(line) for line in checkpoints.read_text().splitlines()]
    cli("release", "create", "shop", "--version", "1.0.0", "--artifact", ARTIFACT)
    created = [json.loads(line) for line in checkpoints.read_text().splitlines()]
    cli("get", "flows")  # reads only: nothing new to sign
    assert len(applied) == 1 and len(created) == 2
    assert len(checkpoints.read_text().splitlines()) == 2
    assert created[1]["count"] > created[0]["count"]

    with sqlite3.connect(tmp_path / "conveyor.db") as con:
        con.execute("delete from audit_events where id = (select max(id) from audit_events)")
    con.close()
    broken = conveyor(tmp_path, "audit", "verify")

    assert broken.returncode == 6, (broken.stdout, broken.stderr)
    total = created[1]["count"]
    assert f"the trail has {total - 1} events, but it had {total} when checkpoint" in broken.stderr
