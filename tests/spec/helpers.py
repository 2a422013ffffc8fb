"""What the bad-input tests share: documents to refuse, and checks that a refusal names
the file, line and field and stores nothing of the batch."""

from __future__ import annotations

import textwrap

import pytest

from conveyor.engine.service import Conveyor
from conveyor.errors import DefinitionError, Problem
from conveyor.spec import load_text

FILE = "defs.yaml"

# A valid document put in front of every bad batch: it must not be stored either.
STAGING = """\
apiVersion: conveyor.dev/v1
kind: Environment
metadata: {name: staging}
spec: {type: non-production}
---
"""

FLOW_HEAD = """\
apiVersion: conveyor.dev/v1
kind: PromotionFlow
metadata: {name: main}
spec:
  version: "1"
  product: PRODUCT
  triggerEnvironment: dev
"""

POLICY_HEAD = """\
apiVersion: conveyor.dev/v1
kind: PromotionPolicy
metadata: {name: checks}
spec:
"""


def block(text: str, indent: int) -> str:
    """A dedented YAML fragment, indented to sit under a key at `indent` spaces."""
    return textwrap.indent(textwrap.dedent(text).lstrip("\n"), " " * indent)


def flow(nodes: str, product: str = "shop", extra: str = "") -> str:
    """A flow document whose `environments:` list is `nodes`, and `extra` spec fields."""
    return (
        FLOW_HEAD.replace("PRODUCT", product)
        + "  environments:\n"
        + block(nodes, 4)
        + (block(extra, 2) if extra else "")
    )


def policy(spec: str) -> str:
    return POLICY_HEAD + block(spec, 2)


def doc(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def line_of(text: str, marker: str, nth: int = 1) -> int:
    """The 1-based line of the `nth` line of `text` that contains `marker`."""
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if marker in line]
    assert len(hits) >= nth, f"{marker!r} occurs {len(hits)} times in the test text"
    if nth == 1:
        assert len(hits) == 1, f"{marker!r} is ambiguous in the test text: lines {hits}"
    return hits[nth - 1]


def stored(cv: Conveyor) -> dict[str, list[tuple[str, int]]]:
    return {
        kind: sorted((c.name, c.revision) for c in cv.get(kind))
        for kind in ("Product", "Environment", "PromotionFlow", "PromotionPolicy")
    }


def refused(cv: Conveyor, text: str) -> list[Problem]:
    """Apply `text`, expect a DefinitionError, and check nothing was applied."""
    before = stored(cv)
    with pytest.raises(DefinitionError) as info:
        cv.apply(docs=load_text(text, FILE))
    assert stored(cv) == before
    assert "staging" not in {c.name for c in cv.get("Environment")}
    assert info.value.problems, "a DefinitionError lists its problems"
    return info.value.problems


def problem_at(problems: list[Problem], field: str) -> Problem:
    found = [p for p in problems if p.field == field]
    assert found, f"no problem at {field}; got {[(p.field, p.message) for p in problems]}"
    return found[0]


def check(
    cv: Conveyor, text: str, field: str, marker: str, *contains: str, nth: int = 1
) -> Problem:
    problem = problem_at(refused(cv, text), field)
    assert problem.file == FILE
    assert problem.line == line_of(text, marker, nth), problem
    for word in contains:
        assert word in problem.message, problem
    return problem
