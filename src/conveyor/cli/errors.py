"""Errors -> exit codes, in one table."""

from __future__ import annotations

from conveyor.errors import (
    ActionError,
    Conflict,
    ConveyorError,
    DefinitionError,
    Forbidden,
    NotFound,
)

# 6 is `audit verify` finding the trail broken.
EXIT_CODES: list[tuple[type[ConveyorError], int]] = [
    (DefinitionError, 2),
    (NotFound, 3),
    (Conflict, 4),
    (Forbidden, 5),
    (ActionError, 7),  # a transfer or an action failed
    (ConveyorError, 1),
]


def exit_code(exc: ConveyorError) -> int:
    return next(code for kind, code in EXIT_CODES if isinstance(exc, kind))
