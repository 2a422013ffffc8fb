"""`conveyor demo --serve`: the quick start, then its store served on 127.0.0.1 with a
password and a token printed for a demo user, and every page showing the demo's data
(issue 12)."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.gitrepos import free_port

PAGES = [
    "/",
    "/flows",
    "/flows/multi-env-parallel-promotion",
    "/products/demo-trioapp",
    "/releases/demo-trioapp@1.0.0",
    "/releases/demo-trioapp@1.0.0/forecast",
    "/releases/demo-trioapp@1.0.0/qa/logs",
    "/health/qa",
    "/approvals",
    "/audit",
    "/settings",
]


def test_the_demo_keeps_serving_its_store(tmp_path: Path) -> None:
    port = free_port()
    exe = str(Path(sys.executable).parent / "conveyor")
    proc = subprocess.Popen(
        [exe, "demo", "--dir", str(tmp_path / "ws"), "--serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        token = password = ""
        deadline = time.monotonic() + 120
        for line in proc.stdout:  # ends when the process does
            if found := re.search(r"log in as user demo, password (\S+)", line):
                password = found[1]
            if found := re.search(r"CONVEYOR_TOKEN=(\S+)", line):
                token = found[1]
                break
            assert time.monotonic() < deadline, "the demo did not print its token"
        assert token.startswith("cvt_"), proc.stderr.read() if proc.stderr else ""
        url = f"http://127.0.0.1:{port}"
        status = None
        while time.monotonic() < deadline:
            try:
                status = httpx.get(
                    f"{url}/api/v1/status",
                    headers={"Authorization": f"Bearer {token}"},
                    trust_env=False,
                )
                break
            except httpx.TransportError:
                time.sleep(0.05)
        assert status is not None and status.status_code == 200, status
        products = {row["product"] for row in status.json()}
        assert "demo-trioapp" in products
        assert httpx.get(f"{url}/api/v1/status", trust_env=False).status_code == 401
        # Every page, on the demo's data, for the demo user logged in with the password.
        with httpx.Client(base_url=url, trust_env=False, timeout=60) as browser:
            logged = browser.post("/login", data={"user": "demo", "password": password})
            assert logged.status_code == 303, logged.text
            for path in PAGES:
                page = browser.get(path)
                assert page.status_code == 200 and "<h1>" in page.text, (path, page.text[:500])
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert proc.returncode == 0
    # A graceful stop: the engine handed its lease back, the trail was signed at the end.
    db = tmp_path / "ws" / "conveyor.db"
    with sqlite3.connect(db) as con:
        assert con.execute("select count(*) from engine_leases").fetchone()[0] == 0
        events = con.execute("select count(*) from audit_events").fetchone()[0]
    con.close()
    last = (
        (tmp_path / "ws" / "conveyor.db.audit" / "checkpoints.jsonl").read_text().splitlines()[-1]
    )
    assert json.loads(last)["count"] == events
