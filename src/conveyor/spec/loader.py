"""Read YAML files into plain documents that remember where each field was written."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, SequenceNode
from ruamel.yaml.reader import ReaderError

from conveyor.errors import DefinitionError, Problem

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class SourceDoc:
    """One YAML document and where it came from."""

    file: str
    line: int  # first line of the document
    node: Any  # the round-trip tree, kept for line lookups
    source: str = ""  # the file's text, for the column of a template in a value

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

    def problem(
        self, path: Path, message: str, resource: str = "", offset: int | None = None
    ) -> Problem:
        """What is wrong where; `offset`: a template's start in the string at `path`."""
        line, column = self.line_of(path), None
        if offset is not None:
            line, column = self._template_position(path, line, offset)
        return Problem(message, self.file, line, dotted(path), resource, column)

    def _template_position(self, path: Path, line: int, offset: int) -> tuple[int, int | None]:
        """The k-th `${{` of the value from its line on (the YAML tree keeps where a value
        starts, not how quotes or block scalars shifted its characters)."""
        value: Any = self.node
        for part in path:
            try:
                value = value[part]
            except (KeyError, IndexError, TypeError):
                return line, None
        k = str(value).count("${{", 0, offset)
        seen = 0
        for number, text in enumerate(self.source.splitlines()[line - 1 :], start=line):
            at = text.find("${{")
            while at >= 0:
                if seen == k:
                    return number, at + 1
                seen += 1
                at = text.find("${{", at + 1)
        return line, None


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
    try:
        # The node graph first: aliases in it are shared, not expanded, so a small file of
        # nested aliases is measured here in microseconds instead of filling the memory
        # when it is turned into plain data.
        problems = [p for node in YAML(typ="rt").compose_all(text) for p in _screen(node, file)]
        if problems:
            raise DefinitionError(problems)
        docs = list(YAML(typ="rt").load_all(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        raise DefinitionError(
            Problem(
                f"malformed YAML: {exc.problem or exc.context}; fix the syntax",
                file,
                line,
                column=column,
            )
        ) from None
    except ReaderError as exc:  # a control character: say where, not at which offset
        line, column = position(text, exc.position)
        raise DefinitionError(
            Problem(
                f"character {exc.character!r} is not allowed in YAML: is this a text file?",
                file,
                line,
                column=column,
            )
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
        out.append(SourceDoc(file, doc.lc.line + 1 if doc.lc.line is not None else 1, doc, text))
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
        elif path.is_file():
            files = [path]
        else:
            problems.append(Problem(f"no such file or directory: {p}", str(p)))
            continue
        for f in files:
            try:
                docs.extend(load_text(read_utf8(f), str(f)))
            except DefinitionError as exc:
                problems.extend(exc.problems)
            except OSError as exc:
                problems.append(Problem(f"cannot read: {exc}", str(f)))
    if problems:
        raise DefinitionError(problems)
    return docs


def read_utf8(path: FsPath) -> str:
    """The file's text; bytes that are not UTF-8 are reported at their line and column."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise DefinitionError(
            Problem(
                f"byte 0x{data[exc.start]:02x} is not UTF-8: definitions are UTF-8 text "
                "(is this a binary file?)",
                str(path),
                line,
                column=column,
            )
        ) from None


def position(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset."""
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


# A definition is a few hundred nodes; a policy with many tasks a few thousand.
MAX_NODES = 100_000
_CORE = "tag:yaml.org,2002:"
_TAGS = {
    _CORE + t for t in ("map", "seq", "str", "int", "float", "bool", "null", "merge", "timestamp")
}


def _screen(root: Node, file: str) -> list[Problem]:
    """Unknown tags (each at its line:column), and a document whose aliases expand past
    MAX_NODES (counted over the shared graph, so in time linear in the file)."""
    problems: list[Problem] = []
    sizes: dict[int, int] = {}

    def size(node: Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        sizes[id(node)] = 1  # a recursive alias counts once instead of looping
        tag = str(node.tag)
        if tag not in _TAGS and tag != "!":  # `!` alone: a plain string
            mark = node.start_mark
            problems.append(
                Problem(
                    f"unknown YAML tag '{tag}': definitions use plain YAML; remove the tag",
                    file,
                    mark.line + 1,
                    column=mark.column + 1,
                )
            )
        if isinstance(node, MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, SequenceNode):
            total = 1 + sum(size(v) for v in node.value)
        else:
            total = 1
        sizes[id(node)] = total
        return total

    if size(root) > MAX_NODES:
        mark = root.start_mark
        problems.append(
            Problem(
                f"the document expands to more than {MAX_NODES:,} values through its YAML "
                "aliases (*name): write the values out, or use fewer nested aliases",
                file,
                mark.line + 1,
                column=mark.column + 1,
            )
        )
    return problems


def _first_line(doc: Any) -> int | None:
    lc = getattr(doc, "lc", None)
    return lc.line + 1 if lc is not None and lc.line is not None else None
