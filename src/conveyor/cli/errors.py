"""Errors -> exit codes, in one table."""

from __future__ import annotations

from conveyor.errors import (
    ActionError,
    AuditBroken,
    Conflict,
    ConveyorError,
    DefinitionError,
    Forbidden,
    NotFound,
    Unauthenticated,
)

# Codes of outcomes rather than errors, for scripts: `audit verify` finding the trail
# broken; `run --until-idle`, `release wait` and `release watch` seeing a release fail
# (or be terminated), be recalled, or not finish in time.
AUDIT_BROKEN = 6
RELEASE_FAILED = 8
RELEASE_RECALLED = 9
WAIT_TIMED_OUT = 10

EXIT_CODES: list[tuple[type[ConveyorError], int]] = [
    (DefinitionError, 2),
    (NotFound, 3),
    (Conflict, 4),
    (Forbidden, 5),
    (Unauthenticated, 5),
    (AuditBroken, AUDIT_BROKEN),
    (ActionError, 7),  # a transfer or an action failed
    (ConveyorError, 1),
]


def exit_code(exc: ConveyorError) -> int:
    return next(code for kind, code in EXIT_CODES if isinstance(exc, kind))
