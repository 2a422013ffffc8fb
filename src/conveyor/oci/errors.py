"""What an OCI copy can fail with, fitted into Conveyor's error tree.

Each class also derives from the generic Conveyor error its situation matches, so callers
that only know `NotFound`, `Conflict`, `Forbidden`, `TransientError` or `TerminalError`
(the CLI's exit codes, the engine's retry decision) treat registry failures correctly
without importing this module.

Messages never carry credentials or tokens: `scrub` removes known secrets from any text
taken from the outside (an exception, a registry's error body) before it goes into one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from conveyor.errors import (
    Conflict,
    ConveyorError,
    Forbidden,
    NotFound,
    TerminalError,
    TransientError,
)


class RegistryError(ConveyorError):
    """Root of every failure talking to an OCI registry."""


class AuthRefused(RegistryError, Forbidden):
    """The registry (or its token service) refused us after we authenticated (or it
    requires credentials we do not have): 401/403."""


class ImageNotFound(RegistryError, NotFound):
    """The source manifest (or a blob it names) does not exist."""


class TagConflict(RegistryError, Conflict):
    """The destination tag points at another digest; tags are immutable unless forced."""


class TransferFailed(RegistryError, TransientError):
    """The transfer broke in a way a later attempt may fix: retries ran out on 5xx/429 or
    network errors, or bytes arrived whose digest did not match."""


class RegistryProtocolError(RegistryError, TerminalError):
    """The registry answered something this client will not or cannot follow: an
    unexpected status (a 400 rejecting a manifest), an unsupported manifest format, or a
    plain-http URL while `insecure` is off. Retrying will not help."""


class CopyCancelled(RegistryError):
    """The caller's cancel event was set; nothing was tagged."""


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every known secret replaced, so it may go into a message or a log."""
    for secret in secrets:
        # very short "secrets" would mangle ordinary words and protect nothing
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def registry_detail(body: bytes, limit: int = 300) -> str:
    """The registry's own error codes and messages (distribution's `{"errors": [...]}`),
    shortened: enough to diagnose without echoing an arbitrary body."""
    try:
        doc = json.loads(body)
    except ValueError:
        return ""
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if not isinstance(errors, list):
        return ""
    parts = []
    for item in errors:
        if isinstance(item, dict):
            code, message = item.get("code", ""), item.get("message", "")
            parts.append(f"{code}: {message}" if message else str(code))
    text = "; ".join(parts)
    return text if len(text) <= limit else text[: limit - 3] + "..."
