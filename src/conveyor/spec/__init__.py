"""YAML documents -> validated definitions, with file:line on every error."""

from conveyor.spec.loader import SourceDoc, load_paths, load_text
from conveyor.spec.validate import Definition, validate_batch

__all__ = ["Definition", "SourceDoc", "load_paths", "load_text", "validate_batch"]
