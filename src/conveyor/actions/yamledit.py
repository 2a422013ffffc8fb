"""Edit YAML files the way a person would: change the lines that must change, keep the rest.

ruamel.yaml's round trip keeps comments, key order and quotes, but re-indents with one
style and normalises some spellings (`~`, `{ a: 1 }`, `key:   value`). So `load` notes the
file's indentation and text, and `dump` carries the edit back onto the original lines:
lines the edit did not touch keep their bytes, and an unchanged document dumps as the
file it came from, so a re-run cannot commit formatting drift.

Paths: `a.b[0].c`; a key holding dots is quoted: `annotations."example.com/x"`.
`set_path` creates missing mappings on the way (a Helm value not in the file yet) but
never list items: `[3]` of a two-item list is an error, not a guess.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from difflib import SequenceMatcher
from typing import Any, NamedTuple

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark, YAMLError
from ruamel.yaml.scalarstring import FoldedScalarString, LiteralScalarString, ScalarString
from ruamel.yaml.tokens import CommentToken

Part = str | int
_SOURCE = "_conveyor_source"  # where `load` keeps the original text on the document
_TOKEN = re.compile(r'\.?(?:"((?:[^"\\]|\\.)*)"|([^.\[\]"]+))|\[(\d+)\]')
_LEAD = re.compile(r"( *)((?:- +)?)")
_BLOCK_SCALAR = re.compile(r"(?:^|[:-]\s)\s*[|>][-+0-9]*$")
_Container = CommentedMap | CommentedSeq


class Layout(NamedTuple):
    mapping: int = 2
    sequence: int = 2  # where an item's content starts, from its parent's column
    offset: int = 0  # where its `-` is
    start: bool = False  # the file opens with `---`
    newline: str = "\n"


def layout_of(text: str) -> Layout:
    """The indentation most of the file uses, measured under each `key:` line."""
    maps: Counter[int] = Counter()
    seqs: Counter[tuple[int, int]] = Counter()
    opener: int | None = None  # the column children of the previous `key:` line count from
    scalar: int | None = None  # lines deeper than this belong to a `key: |` block scalar
    for raw in text.splitlines():
        line = re.sub(r"\s+#.*$", "", raw).rstrip()
        lead = _LEAD.match(line)
        if lead is None or not line.strip() or line.lstrip().startswith("#"):
            continue
        indent, dash = len(lead.group(1)), lead.group(2)
        if scalar is not None and indent > scalar:
            continue
        scalar = indent if _BLOCK_SCALAR.search(line) else None
        if opener is not None and dash and indent >= opener:
            seqs[(indent + len(dash) - opener, indent - opener)] += 1
        elif opener is not None and indent > opener:
            maps[indent - opener] += 1
        opener = len(lead.group(0)) if line.endswith(":") else None
    mapping = maps.most_common(1)[0][0] if maps else 2
    sequence, offset = seqs.most_common(1)[0][0] if seqs else (mapping, max(0, mapping - 2))
    first = next((s for s in text.splitlines() if s.strip() and s[0] not in "#%"), "")
    newline = "\r\n" if "\r\n" in text else "\n"
    return Layout(mapping, sequence, offset, first.startswith("---"), newline)


def _yaml(layout: Layout) -> YAML:
    yaml = YAML()  # round trip
    yaml.preserve_quotes = True
    yaml.width = 1 << 20  # long lines stay on one line
    yaml.indent(mapping=layout.mapping, sequence=layout.sequence, offset=layout.offset)
    yaml.explicit_start = layout.start
    return yaml


def _emit(doc: CommentedMap, layout: Layout) -> str:
    out = io.StringIO()
    _yaml(layout).dump(doc, out)
    return out.getvalue()


def load(text: str) -> CommentedMap:
    """One YAML document that is a mapping (or empty); ValueError otherwise."""
    layout = layout_of(text)
    text = text.replace("\r\n", "\n")  # ruamel mangles comments in CRLF text; dump restores
    try:
        doc = _yaml(layout).load(text)
    except YAMLError as exc:
        raise ValueError(f"not valid YAML: {exc}") from None
    if doc is None:  # nothing but comments: keep them above what gets added
        try:
            doc = _yaml(layout).load(text.rstrip("\n") + "\n{}\n")
        except YAMLError:  # `...` closed the document: the comments are lost, not the file
            doc = CommentedMap()
    if not isinstance(doc, CommentedMap):
        raise ValueError(f"the document is a {_kind(doc)}, not a mapping")
    setattr(doc, _SOURCE, (text, _emit(doc, layout), layout))
    return doc


def dump(doc: CommentedMap) -> str:
    """The document as text: the loaded file's own lines wherever the edit left them."""
    original, before, layout = getattr(doc, _SOURCE, ("", "", Layout()))
    text = after = _emit(doc, layout)
    if before != original:
        text = _splice(original, before, after)
        try:  # the splice keeps bytes; it may never change what the document says
            if (_yaml(layout).load(text) or CommentedMap()) != doc:
                text = after
        except YAMLError:
            text = after
    return text.replace("\n", layout.newline)


def _splice(original: str, before: str, after: str) -> str:
    """Apply the line changes from `before` to `after` (two dumps) onto `original`.

    A unit is a run of `before` lines with the original lines it came from: one line where
    ruamel reproduced it or only re-spaced it, a run where it rewrote more. A unit the
    edit did not touch is written as the original had it; a touched one as ruamel writes
    it, re-indented like the original lines around it (a list written `  - x` in a file
    that mostly writes `- x`).
    """
    o, b, n = (s.splitlines(keepends=True) for s in (original, before, after))
    units: list[tuple[int, list[str]]] = []  # (first line in `before`, original lines)
    unit_of: list[int] = []  # line in `before` -> its unit
    shift = [0] * len(b)  # original indentation minus ruamel's, line by line
    dropped: list[str] = []  # original lines ruamel left out (a comment above `---`)
    for _, o1, o2, b1, b2 in SequenceMatcher(None, o, b, autojunk=False).get_opcodes():
        if b1 == b2:
            dropped += o[o1:o2]
            continue
        pairs = zip(o[o1:o2], b[b1:b2], strict=False)
        one_to_one = o2 - o1 == b2 - b1 and all(x.split() == y.split() for x, y in pairs)
        for i in range(b1, b2) if one_to_one else [b1]:
            units.append((i, dropped + ([o[o1 + i - b1]] if one_to_one else o[o1:o2])))
            unit_of += [len(units) - 1] * (1 if one_to_one else b2 - b1)
            shift[i] = _indent(o[o1 + i - b1]) - _indent(b[i]) if one_to_one else 0
            dropped = []
    changes = SequenceMatcher(None, b, n, autojunk=False).get_opcodes()
    touched: set[int] = set()
    for tag, b1, b2, _, _ in changes:
        if tag != "equal":
            touched.update(unit_of[b1:b2])
            if 0 < b1 == b2 < len(b) and unit_of[b1 - 1] == unit_of[b1]:
                touched.add(unit_of[b1])  # an insertion inside a rewritten run
    out: list[str] = []
    for tag, b1, b2, n1, n2 in changes:
        if tag != "equal":
            out += [
                _reindent(line, b, shift, min(b1 + k, b2 - 1)) for k, line in enumerate(n[n1:n2])
            ]
            continue
        for i in range(b1, b2):
            first, lines = units[unit_of[i]]
            out += [b[i]] if unit_of[i] in touched else lines if i == first else []
    return "".join(out + dropped)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _level(line: str) -> int:
    """Depth for comparing lines: a `- ` item sits just inside the key above it."""
    return 2 * _indent(line) + line.lstrip(" ").startswith("-")


def _reindent(line: str, b: list[str], shift: list[int], start: int) -> str:
    """`line` moved as ruamel's nearest line above it at its level or higher was moved."""
    for j in range(min(start, len(b) - 1), -1, -1):
        ref = b[j].strip()
        if line.strip() and ref and ref[0] != "#" and _level(b[j]) <= _level(line):
            return " " * shift[j] + line if shift[j] >= 0 else line[min(-shift[j], _indent(line)) :]
    return line


def parse_path(path: str) -> list[Part]:
    """`a.b[0]."c.d"` -> ["a", "b", 0, "c.d"]; ValueError naming the position if malformed."""
    parts: list[Part] = []
    pos = 0
    while pos < len(path) or not parts:
        m = _TOKEN.match(path, pos)
        if m is None or m.end() == pos or (m[3] is None and m[0].startswith(".") != (pos > 0)):
            raise ValueError(
                f"bad path '{path}' at character {pos + 1}: write keys with dots, list "
                'indexes as [N], and "quoted.keys" for keys holding dots'
            )
        quoted, key, index = m.groups()
        parts.append(int(index) if index else key or re.sub(r"\\(.)", r"\1", quoted))
        pos = m.end()
    return parts


def set_path(doc: CommentedMap, path: str, value: Any) -> bool:
    """Set the value at `path`, creating missing mappings; True if the document changed."""
    parts = parse_path(path)
    node: Any = doc
    for depth, part in enumerate(parts):
        where = _show(parts[:depth])
        if isinstance(part, int) and not isinstance(node, list):
            raise ValueError(f"'{where}' is a {_kind(node)}, not a list: it has no [{part}]")
        if isinstance(part, int) and part >= len(node):
            raise ValueError(f"'{where}' has {len(node)} item(s): there is no [{part}]")
        if isinstance(part, str) and not isinstance(node, dict):
            raise ValueError(f"'{where}' is a {_kind(node)}, not a mapping: no '{part}' in it")
        if depth == len(parts) - 1:
            break
        if isinstance(part, str) and node.get(part) is None:
            if isinstance(parts[depth + 1], int):
                missing = _show(parts[: depth + 1])
                raise ValueError(f"'{missing}' is missing or empty; lists are not created")
            put(node, part, CommentedMap())
        node = node[part]
    if isinstance(part, str):
        return put(node, part, value, path)
    if _same(node[part], value):
        return False
    node[part] = _styled(node[part], value, path)
    return True


def put(mapping: CommentedMap, key: str, value: Any, where: str = "") -> bool:
    """Set one key, keeping the old value's quotes; a new key goes last, above the comment
    lines that followed the mapping. True if anything changed."""
    if key in mapping:
        if _same(mapping[key], value):
            return False
        mapping[key] = _styled(mapping[key], value, where or key)
        return True
    tail = _detach_tail(mapping)
    mapping[key] = _node(value)
    _attach_tail(mapping, tail)
    return True


def drop(mapping: CommentedMap, key: str) -> bool:
    """Remove one key; the comment lines after it stay where they were."""
    if key not in mapping:
        return False
    tail = _detach_tail(mapping)
    del mapping[key]
    _attach_tail(mapping, tail)
    return True


def append(seq: CommentedSeq, item: Any) -> None:
    """Add an item at the end of a list, above the comment lines that followed it."""
    tail = _detach_tail(seq)
    seq.append(_node(item))
    _attach_tail(seq, tail)


def _last_leaf(node: Any) -> tuple[Any, Part | None]:
    """The container holding the last value written inside `node`, and that value's key."""
    while isinstance(node, _Container) and node and not node.fa.flow_style():
        key: Part = list(node)[-1] if isinstance(node, CommentedMap) else len(node) - 1
        child = node[key]
        if not isinstance(child, _Container) or not child or child.fa.flow_style():
            return node, key
        node = child
    return node, None


def _detach_tail(node: Any) -> str:
    """ruamel hangs the comment lines after a block on its last value; take them off, so
    that a value added after it does not land below them."""
    holder, key = _last_leaf(node)
    slot = 2 if isinstance(holder, CommentedMap) else 0  # after-value comment, by kind
    entry = holder.ca.items.get(key) if key is not None else None
    if not entry or entry[slot] is None:
        return ""
    text = str(entry[slot].value)
    block = isinstance(holder[key], LiteralScalarString | FoldedScalarString)
    head, _, tail = ("", "", text) if block else text.partition("\n")  # a `|` ends its line
    if head.strip():
        entry[slot].value = head + "\n"  # the comment on the value's own line stays
    else:
        entry[slot] = None
    return tail


def _attach_tail(node: Any, tail: str) -> None:
    holder, key = _last_leaf(node)
    if not tail or key is None:
        return
    slot = 2 if isinstance(holder, CommentedMap) else 0
    entry = holder.ca.items.setdefault(key, [None, None, None, None])
    if entry[slot] is None:
        block = isinstance(holder[key], LiteralScalarString | FoldedScalarString)
        entry[slot] = CommentToken(("" if block else "\n") + tail, CommentMark(0), None)
    else:
        entry[slot].value += tail


def _styled(old: Any, new: Any, where: str) -> Any:
    """`new` written as `old` was (same quotes); a mapping or list is not replaced by less."""
    if isinstance(old, dict | list) and _kind(old) != _kind(new):
        raise ValueError(f"'{where}' is a {_kind(old)}: give a {_kind(old)}, or set inside it")
    if isinstance(new, str) and isinstance(old, ScalarString):
        return type(old)(new)
    return _node(new)


def _node(value: Any) -> Any:
    if isinstance(value, dict) and not isinstance(value, CommentedMap):
        return CommentedMap((str(k), _node(v)) for k, v in value.items())
    if isinstance(value, list) and not isinstance(value, CommentedSeq):
        return CommentedSeq(_node(v) for v in value)
    return value


def _same(old: Any, new: Any) -> bool:
    """Equal and of the same kind, at every depth: "5" replacing 5, or true replacing 1
    inside a mapping, is a change (the type given wins; Python has True == 1)."""
    if _kind(old) != _kind(new):
        return False
    if isinstance(old, dict):
        return old.keys() == new.keys() and all(_same(old[k], new[k]) for k in old)
    if isinstance(old, list):
        return len(old) == len(new) and all(_same(a, b) for a, b in zip(old, new, strict=True))
    return bool(old == new)


def _kind(value: Any) -> str:
    kinds: list[tuple[type, str]] = [(bool, "boolean"), (int, "number"), (float, "number")]
    kinds += [(str, "string"), (dict, "mapping"), (list, "list"), (type(None), "null")]
    return next((name for t, name in kinds if isinstance(value, t)), type(value).__name__)


def _show(parts: list[Part]) -> str:
    shown = [f"[{p}]" if isinstance(p, int) else f'"{p}"' if "." in p else p for p in parts]
    return ".".join(shown).replace(".[", "[")
