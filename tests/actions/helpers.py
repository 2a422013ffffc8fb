"""What the git action tests share: a line diff, promotions that arrive while a branch is
busy, and one task run through a Conveyor."""

from __future__ import annotations

import difflib
import json
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from conveyor.actions.gitrepo import GitSettings, WorkingCopies, remote_url
from conveyor.engine.service import Conveyor
from tests.conftest import BASE, DIGEST, apply_yaml


def diff(before: str, after: str) -> tuple[list[str], list[str]]:
    """(removed, added) lines."""
    lines = list(difflib.ndiff(before.splitlines(), after.splitlines()))
    return [x[2:] for x in lines if x[:2] == "- "], [x[2:] for x in lines if x[:2] == "+ "]


def first_call(
    monkeypatch: pytest.MonkeyPatch, owner: object, name: str, before: Callable[[], object]
) -> None:
    """`owner.name` runs `before()` first: someone pushes between our sync and our push."""
    real = getattr(owner, name)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        before()
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapped)


def while_busy(
    data_dir: Path, workdir: Path, settings: GitSettings, calls: Sequence[Callable[[], None]]
) -> None:
    """Run `calls` at once, each in a thread, all started while the branch of `settings` is
    locked; it is let go when every one waits for it (so a batch takes them all)."""
    copies = WorkingCopies.under(data_dir)
    path = copies.path(remote_url(settings.repo, workdir), settings.branch)
    with copies.lock(path):
        threads = [threading.Thread(target=call) for call in calls]
        for t in threads:
            t.start()
        for _ in range(200):
            if len(copies._waiting.get(path, [])) == len(calls):
                break
            threading.Event().wait(0.01)
    for t in threads:
        t.join(timeout=60)


def definition(kind: str, name: str, spec: dict[str, Any]) -> str:
    """One YAML document (written as JSON), with its `---`."""
    doc = {"apiVersion": "conveyor.dev/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}
    return "---\n" + json.dumps(doc) + "\n"


def one_task_policy(name: str, task: str, uses: str, with_: dict[str, Any]) -> str:
    """A policy whose workflow is one step, `deploy`, of one task."""
    steps = [{"name": "deploy", "tasks": [{"name": task, "uses": uses, "with": with_}]}]
    return definition("PromotionPolicy", name, {"workflow": {"steps": steps}})


def promote(cv: Conveyor, policy: str, version: str) -> None:
    """Apply BASE, `policy` and a flow of `dev` alone; promote shop@`version`; it succeeds."""
    flow = {"version": "1.00", "product": "shop", "triggerEnvironment": "dev"}
    apply_yaml(cv, BASE + policy + definition("PromotionFlow", "main", flow))
    cv.create_release("shop", version, {"web": f"registry.local/web@{DIGEST}"})
    cv.trigger("main", f"shop@{version}")
    cv.engine.run_until_idle(max_passes=200)
    assert cv.show(f"shop@{version}").status == "succeeded", cv.show(f"shop@{version}")
