"""Conveyor: promote immutable, versioned releases through environments behind gates."""

from conveyor.errors import (
    Conflict,
    ConveyorError,
    DefinitionError,
    Forbidden,
    NotFound,
    TerminalError,
    TransientError,
)

__all__ = [
    "Conflict",
    "ConveyorError",
    "DefinitionError",
    "Forbidden",
    "NotFound",
    "TerminalError",
    "TransientError",
]
__version__ = "0.1.0"
