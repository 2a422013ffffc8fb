"""Errors -> exit codes, in one table."""

from __future__ import annotations

from conveyor.errors import Conflict, ConveyorError, DefinitionError, Forbidden, NotFound

EXIT_CODES: list[tuple[type[ConveyorError], int]] = [
    (DefinitionError, 2),
    (NotFound, 3),
    (Conflict, 4),
    (Forbidden, 5),
    (ConveyorError, 1),
]


def exit_code(exc: ConveyorError) -> int:
    return next(code for kind, code in EXIT_CODES if isinstance(exc, kind))
