"""Real git repositories for tests: bare repositories on disk, served by `git daemon` on
loopback, and helpers to look at what reached them."""

from __future__ import annotations

import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

IDENTITY = ["-c", "user.name=Someone Else", "-c", "user.email=else@localhost"]


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *IDENTITY, *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def bare_repo(root: Path, name: str, files: dict[str, str], branch: str = "main") -> Path:
    """A bare repository `root/name.git` whose `branch` holds `files` in one commit."""
    bare = root / f"{name}.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", branch, str(bare)], check=True)
    seed = root / f"{name}-seed"
    git(root, "clone", "-q", str(bare), str(seed))
    for rel, text in files.items():
        (seed / rel).parent.mkdir(parents=True, exist_ok=True)
        (seed / rel).write_text(text)
    git(seed, "add", "-A")
    git(seed, "commit", "-qm", "start")
    git(seed, "push", "-q", "origin", f"HEAD:{branch}")
    return bare


def show(bare: Path, ref: str, path: str) -> str:
    """A file as the remote has it."""
    return git(bare, "show", f"{ref}:{path}")


def log(bare: Path, ref: str = "main") -> list[str]:
    """Commit subjects on the remote, newest first."""
    return git(bare, "log", "--format=%s", ref).splitlines()


def outside_push(bare: Path, work: Path, path: str, text: str, branch: str = "main") -> str:
    """Someone else pushes a commit; returns its id."""
    if not work.exists():
        git(bare.parent, "clone", "-q", str(bare), str(work))
    git(work, "pull", "-q", "origin", branch)
    (work / path).parent.mkdir(parents=True, exist_ok=True)
    (work / path).write_text(text)
    git(work, "add", "-A")
    git(work, "commit", "-qm", f"outside change to {path}")
    git(work, "push", "-q", "origin", f"HEAD:{branch}")
    return git(work, "rev-parse", "HEAD").strip()


def free_port() -> int:
    """A loopback port nobody listens on (once this returns)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def git_daemon(base: Path) -> Iterator[str]:
    """Serve every repository under `base` (pushes allowed) on loopback; yields git://host:port."""
    port = free_port()
    proc = subprocess.Popen(
        [
            "git",
            "daemon",
            "--reuseaddr",
            "--export-all",
            "--enable=receive-pack",
            f"--base-path={base}",
            "--listen=127.0.0.1",
            f"--port={port}",
            str(base),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        ready = threading.Event()
        for _ in range(200):  # up to ~10 s for the daemon to listen
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            ready.wait(0.05)
        else:
            raise RuntimeError("git daemon did not start")
        yield f"git://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
