"""Read YAML files into plain documents that remember where each field was written."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from conveyor.errors import DefinitionError, Problem

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class SourceDoc:
    """One YAML document and where it came from."""

    file: str
    line: int  # first line of the document
    node: Any  # the round-trip tree, kept for line lookups

    @property
    def data(self) -> Any:
        return plain(self.node)

    def line_of(self, path: Path) -> int:
        """The line of the deepest field of `path` that exists (1-based)."""
        node, line = self.node, self.line
        for part in path:
            try:
                if isinstance(node, CommentedMap) and part in node:
                    line = node.lc.key(part)[0] + 1
                    node = node[part]
                elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
                    line = node.lc.item(part)[0] + 1
                    node = node[part]
                else:
                    break
            except (KeyError, IndexError, AttributeError, TypeError):
                break
        return line

    def problem(self, path: Path, message: str, resource: str = "") -> Problem:
        return Problem(message, self.file, self.line_of(path), dotted(path), resource)


def dotted(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def plain(node: Any) -> Any:
    """Round-trip YAML types -> plain dicts, lists and scalars (for JSON storage)."""
    if isinstance(node, dict):
        return {str(k): plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    if isinstance(node, bool | int | float) or node is None:
        return node
    return str(node)


def load_text(text: str, file: str = "<input>") -> list[SourceDoc]:
    yaml = YAML(typ="rt")
    try:
        docs = list(yaml.load_all(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise DefinitionError(
            Problem(f"malformed YAML: {exc.problem or exc.context}; fix the syntax", file, line)
        ) from None
    except YAMLError as exc:
        raise DefinitionError(Problem(f"malformed YAML: {exc}", file)) from None
    out = []
    for doc in docs:
        if doc is None:
            continue
        if not isinstance(doc, CommentedMap):
            raise DefinitionError(
                Problem(
                    "a document must be a mapping with apiVersion, kind, metadata, spec",
                    file,
                    _first_line(doc),
                )
            )
        out.append(SourceDoc(file, doc.lc.line + 1 if doc.lc.line is not None else 1, doc))
    return out


def load_paths(paths: Iterable[str | FsPath]) -> list[SourceDoc]:
    """Every document of every *.yaml/*.yml file given (directories are walked, sorted)."""
    docs: list[SourceDoc] = []
    problems: list[Problem] = []
    for p in paths:
        path = FsPath(p)
        if path.is_dir():
            files = sorted(
                f for f in path.rglob("*") if f.suffix in (".yaml", ".yml") and f.is_file()
            )
        elif path.is_file() or str(p) == "-":
            files = [path]
        else:
            problems.append(Problem(f"no such file or directory: {p}", str(p)))
            continue
        for f in files:
            try:
                docs.extend(load_text(f.read_text(encoding="utf-8"), str(f)))
            except DefinitionError as exc:
                problems.extend(exc.problems)
            except (OSError, UnicodeDecodeError) as exc:
                problems.append(Problem(f"cannot read: {exc}", str(f)))
    if problems:
        raise DefinitionError(problems)
    return docs


def _first_line(doc: Any) -> int | None:
    lc = getattr(doc, "lc", None)
    return lc.line + 1 if lc is not None and lc.line is not None else None
