"""What the git action tests share: a line diff, promotions that arrive while a branch is
busy, someone else pushing all the time, and one task run through a Conveyor."""

from __future__ import annotations

import difflib
import json
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from conveyor.actions.base import ActionContext
from conveyor.actions.gitcopies import WorkingCopies
from conveyor.actions.gitrepo import GitSettings, inside, remote_url
from conveyor.clock import Deadline, SystemClock
from conveyor.engine.service import Conveyor
from tests.conftest import BASE, DIGEST, apply_yaml
from tests.gitrepos import IDENTITY, git

TEMPLATE = {
    "release": {"product": "shop", "version": "1.2.3", "labels": {}},
    "environment": {"name": "prod", "labels": {}, "settings": {}, "type": "production"},
}


def git_ctx(tmp_path: Path, promotion: int = 7, env: str = "prod", **more: Any) -> ActionContext:
    """What a git action gets for shop@1.2.3 in `env`; `more` sets other fields."""
    fields: dict[str, Any] = {
        "raw": {},
        "template": {**TEMPLATE, "environment": {**TEMPLATE["environment"], "name": env}},
        "workdir": tmp_path,
        "timeout_s": 60,
        "data_dir": tmp_path / "data",
        "promotion_id": promotion,
    }
    return ActionContext(**{**fields, **more})


def writer(rel: str = "env/prod.txt", text: str = "1.2.3\n") -> Callable[[Path], list[str]]:
    """An edit writing `text` to `rel`."""

    def edit(root: Path) -> list[str]:
        target = inside(root, rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        return [rel]

    return edit


class Pusher(threading.Thread):
    """Someone else pushing to `main` all the time: a commit every `every_s`, each adding its
    own file under `name`/, rebased and pushed again when it loses a race (as a CI job
    would). Stops at `limit` commits, after `seconds`, or when `stop` is set."""

    def __init__(
        self, bare: Path, work: Path, name: str, every_s: float, limit: int, seconds: float
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.bare, self.work, self.every_s = bare, work, every_s
        self.limit, self.seconds = limit, seconds
        self.stop, self.started = threading.Event(), threading.Event()
        self.landed: list[int] = []
        self.error: str | None = None

    def run(self) -> None:
        try:
            self._push_all()
        except Exception as exc:  # the test asserts on it; a thread cannot raise to it
            self.error = repr(exc)
        finally:
            self.started.set()

    def _push_all(self) -> None:
        git(self.bare.parent, "clone", "-q", str(self.bare), str(self.work))
        end = time.monotonic() + self.seconds
        for n in range(self.limit):
            if self.stop.is_set() or time.monotonic() > end:
                return
            (self.work / self.name).mkdir(exist_ok=True)
            (self.work / self.name / f"{n}.txt").write_text(f"{n}\n")
            git(self.work, "add", "-A")
            git(self.work, "commit", "-qm", f"{self.name} {n}")
            for _ in range(1000):
                pushed = subprocess.run(
                    ["git", *IDENTITY, "push", "-q", "origin", "HEAD:main"],
                    cwd=self.work,
                    capture_output=True,
                    text=True,
                )
                if pushed.returncode == 0:
                    self.landed.append(n)
                    break
                git(self.work, "pull", "-q", "--rebase", "origin", "main")
            else:
                raise RuntimeError(f"{self.name} {n} never landed")
            self.started.set()
            self.stop.wait(self.every_s)


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
    with copies.hold(path, Deadline.after(SystemClock(), 60)):
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
