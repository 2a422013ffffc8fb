"""The tokens `conveyor login` keeps, one per server, in a file only its owner can read."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def credentials_file() -> Path:
    """$CONVEYOR_CONFIG_DIR, else $XDG_CONFIG_HOME/conveyor, else ~/.config/conveyor."""
    base = os.environ.get("CONVEYOR_CONFIG_DIR")
    if base:
        return Path(base) / "credentials.json"
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(xdg) / "conveyor" / "credentials.json"


def _key(server: str) -> str:
    return server.rstrip("/")


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError):
        return {}  # an unreadable file is no credential: `conveyor login` writes a new one
    return data if isinstance(data, dict) else {}


def saved_token(server: str) -> str | None:
    entry = _read(credentials_file()).get("servers", {}).get(_key(server))
    return entry.get("token") if isinstance(entry, dict) else None


def save_token(server: str, token: str, user: str) -> Path:
    path = credentials_file()
    data = _read(path)
    data.setdefault("servers", {})[_key(server)] = {"token": token, "user": user}
    _write(path, data)
    return path


def forget(server: str) -> bool:
    path = credentials_file()
    data = _read(path)
    if data.get("servers", {}).pop(_key(server), None) is None:
        return False
    _write(path, data)
    return True


def _write(path: Path, data: dict[str, Any]) -> None:
    """Owner-only from its first byte, replaced whole (a crash leaves the old file)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_suffix(".tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
    os.replace(partial, path)
