"""Registry credentials: where they come from, and how they stay secret.

A `Credentials` never shows its password (repr, str, logs, error messages); the session
sends it only to the registry it was given for and to the token service that registry
names in its challenge.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor.oci.reference import DOCKER_HUB, HUB_ALIASES

log = logging.getLogger(__name__)

# the user name Google's registries expect with an OAuth2 access token as the password
TOKEN_USER = "oauth2accesstoken"


@dataclass(frozen=True)
class Credentials:
    """A user name and password (or token) for one registry; both None is anonymous."""

    username: str | None = None
    # repr=False keeps it out of the dataclass repr, and so out of str() and any log line
    password: str | None = field(default=None, repr=False)


def from_override(value: str | None, *, registry: str | None = None) -> Credentials | None:
    """Credentials from a SOURCE_AUTH_OVERRIDE / DEST_AUTH_OVERRIDE value.

    - "USER:PASSWORD": basic credentials (also presented to a bearer token service);
    - "@/path/config.json": a docker config file, read for `registry` (when it is not
      given, the file must hold exactly one registry's credentials);
    - anything else: a bare access token, sent as the password of "oauth2accesstoken".

    None or blank is None (anonymous). Errors never quote the value: it is a secret.
    """
    if value is None or not value.strip():
        return None
    # env files and secret mounts often end in a newline that is not part of the secret
    value = value.strip()
    if value.startswith("@"):
        path = Path(value[1:]).expanduser()
        if not value[1:]:
            raise ValueError("auth override '@' names no docker config file")
        if not path.is_file():
            raise ValueError(f"auth override names {path}, which is not a file")
        if registry is not None:
            return from_docker_config(registry, path)
        entries = _auths(_read(path))
        if len(entries) != 1:
            raise ValueError(
                f"{path} holds credentials for {len(entries)} registries; "
                "say which registry they are for"
            )
        return _entry_credentials(next(iter(entries.values())), path)
    if ":" in value:
        username, password = value.split(":", 1)
        if not username or not password:
            raise ValueError("auth override USER:PASSWORD has an empty user or password")
        return Credentials(username, password)
    return Credentials(TOKEN_USER, value)


def from_docker_config(registry: str, path: Path | None = None) -> Credentials | None:
    """The inline credentials a docker config file holds for `registry`, or None.

    Without `path`: $DOCKER_CONFIG/config.json, else ~/.docker/config.json; a missing file
    is None. Keys may be spelled as docker writes them ("https://index.docker.io/v1/",
    "ghcr.io", "http://127.0.0.1:5000"). Credential helpers (credsStore, credHelpers) are
    not run: this client never executes programs named by a config file.
    """
    if path is None:
        base = os.environ.get("DOCKER_CONFIG")
        path = Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"
    if not path.is_file():
        return None
    wanted = _host_key(registry)
    doc = _read(path)
    entries = _auths(doc)
    if wanted in entries:
        return _entry_credentials(entries[wanted], path)
    if wanted in _helpers(doc):
        log.warning("%s names a credential helper for %s; helpers are not supported", path, wanted)
    return None


def _read(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        # the file's content may be secret: name the file and the kind of failure only
        raise ValueError(f"cannot read docker config {path}: {type(e).__name__}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"docker config {path} is not a JSON object")
    return doc


def _auths(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The "auths" entries of a config, keyed by normalised host; entries without inline
    credentials are dropped, so they count neither as a match nor as a choice."""
    auths = doc.get("auths")
    if not isinstance(auths, dict):
        return {}
    found: dict[str, dict[str, Any]] = {}
    for key, entry in auths.items():
        if isinstance(key, str) and isinstance(entry, dict) and _has_credentials(entry):
            found[_host_key(key)] = entry
    return found


def _helpers(doc: dict[str, Any]) -> set[str]:
    helpers = doc.get("credHelpers")
    names = {_host_key(k) for k in helpers} if isinstance(helpers, dict) else set()
    if doc.get("credsStore"):
        names.add(_host_key(DOCKER_HUB))
    return names


def _has_credentials(entry: dict[str, Any]) -> bool:
    return bool(entry.get("auth")) or bool(entry.get("username") and entry.get("password"))


def _entry_credentials(entry: dict[str, Any], path: Path) -> Credentials:
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            decoded = base64.b64decode(auth, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ValueError(f"an 'auth' entry in {path} is not base64 of USER:PASSWORD") from None
        username, sep, password = decoded.partition(":")
        if not sep or not username:
            raise ValueError(f"an 'auth' entry in {path} is not base64 of USER:PASSWORD")
        return Credentials(username, password)
    user, secret = entry.get("username"), entry.get("password")
    if not isinstance(user, str) or not isinstance(secret, str):
        raise ValueError(f"an entry in {path} has a non-string username or password")
    return Credentials(user, secret)


def _host_key(key: str) -> str:
    """`https://index.docker.io/v1/` -> `registry-1.docker.io`, `HTTP://Host:5000` ->
    `host:5000`: the form ImageRef.registry takes."""
    host = key.strip()
    if "://" in host:
        host = host.split("://", 1)[1]
    host = host.split("/", 1)[0].lower()
    return DOCKER_HUB if host in HUB_ALIASES else host
