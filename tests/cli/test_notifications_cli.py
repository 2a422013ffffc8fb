"""`conveyor notifications`: delivered, retrying and given-up notifications, as a table and
as JSON (issue 11)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.helpers import ARTIFACT, FAILING_POLICY, Cli, write_defs
from tests.webhooks import Receiver


def sink(url: str) -> str:
    return f"""\
apiVersion: conveyor.dev/v1
kind: NotificationSink
metadata: {{name: oncall}}
spec:
  events: [promotion.failed]
  webhook: {{url: "{url}"}}
"""


def test_delivered_and_failing_notifications_are_listed(
    tmp_path: Path, cli: Cli, receiver: Receiver
) -> None:
    defs = write_defs(tmp_path, FAILING_POLICY)
    (defs / "sink.yaml").write_text(sink(receiver.url))
    cli("apply", "-f", str(defs))
    assert cli("notifications") == "no notifications\n"
    cli("release", "create", "shop", "--version", "1.0.0", "--artifact", ARTIFACT)
    cli("trigger", "main", "--release", "shop@1.0.0")
    receiver.failures = 1
    cli.invoke("run", "--until-idle")  # the release fails: exit 8

    table = cli("notifications", "--utc")
    assert "oncall  promotion.failed  shop@1.0.0/dev" in table
    assert "retrying at " in table and "(1 failed: the webhook answered HTTP 500)" in table
    (row,) = json.loads(cli("notifications", "--undelivered", "-o", "json"))
    assert (row["sink"], row["event"], row["attempts"], row["deliveredAt"]) == (
        "oncall",
        "promotion.failed",
        1,
        None,
    )
    assert row["lastError"] == "the webhook answered HTTP 500"
    assert receiver.got == []
