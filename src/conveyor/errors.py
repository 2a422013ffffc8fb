"""One exception root; each subclass says what went wrong.

The CLI maps these to exit codes in one table (cli/errors.py); the API will map them
to HTTP statuses the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


class ConveyorError(Exception):
    """Root of every error Conveyor raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a definition: where it is, which field, what to do."""

    message: str
    file: str = "<input>"
    line: int | None = None
    field: str = ""
    resource: str = ""
    column: int | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        if self.line is not None and self.column is not None:
            where += f":{self.column}"
        parts = [where]
        if self.resource:
            parts.append(self.resource)
        if self.field:
            parts.append(f"field '{self.field}'")
        return f"{': '.join(parts)}: {self.message}"


class DefinitionError(ConveyorError):
    """A definition (YAML, a release, a template) is invalid; nothing was applied."""

    def __init__(self, problems: list[Problem] | Problem | str) -> None:
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class NotFound(ConveyorError):
    """A named thing does not exist."""


class Conflict(ConveyorError):
    """The request contradicts the current state (a version created twice, a full queue)."""


class PreconditionFailed(Conflict):
    """A write based on a stale read: the thing changed since (HTTP 412)."""


class IllegalTransition(Conflict):
    """A state change the state machine does not allow (a bug, or a race lost)."""

    def __init__(self, what: str, subject: str, src: str, dst: str) -> None:
        self.what, self.subject, self.src, self.dst = what, subject, src, dst
        super().__init__(f"{what} {subject}: {src} -> {dst} is not a transition")


class EngineBusy(Conflict):
    """Another engine holds the database's lease."""

    def __init__(self, holder: str, expires_at: datetime, message: str) -> None:
        self.holder, self.expires_at = holder, expires_at
        super().__init__(message)


class SchemaMismatch(ConveyorError):
    """The database's schema is not the one this Conveyor was built for (newer, or older on
    a server database, which `conveyor db upgrade` brings to head)."""


class Forbidden(ConveyorError):
    """The caller may not do this."""


class Unauthenticated(ConveyorError):
    """Who calls is not known: no credentials, or a token that is not valid (HTTP 401)."""


class AuditBroken(ConveyorError):
    """The audit trail cannot be trusted or extended: a key is missing, a checkpoint forged."""


class ActionError(ConveyorError):
    """An action failed."""


class TransientError(ActionError):
    """An action failed in a way that may pass on a retry (network, lock, timeout)."""


class TerminalError(ActionError):
    """An action failed in a way a retry will not fix (bad input, missing file)."""
