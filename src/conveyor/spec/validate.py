"""Validate a batch of documents as a whole: shape, plugin settings, references, the DAG."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from conveyor.errors import DefinitionError, Problem
from conveyor.model.definitions import KINDS, ChannelRef, Document, FlowNode, FlowSpec, Strict
from conveyor.model.flow import build_graph
from conveyor.model.plugins import Catalog
from conveyor.spec.loader import Path, SourceDoc
from conveyor.spec.tasks import Finding, check_policy_body, check_tasks, settings_errors


@dataclass(frozen=True)
class Definition:
    kind: str
    name: str
    labels: dict[str, str]
    spec: Strict
    document: dict[str, Any]  # the plain document as written, stored as JSON
    file: str
    line: int

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}"


def problems_of(doc: SourceDoc, found: Sequence[Finding], resource: str = "") -> list[Problem]:
    return [doc.problem(f[0], f[1], resource, *f[2:]) for f in found]


def parse_document(doc: SourceDoc) -> tuple[Definition | None, list[Problem]]:
    data = doc.data
    found = settings_errors(Document, data, ())
    if found:
        return None, problems_of(doc, found)
    envelope = Document.model_validate(data)
    resource = f"{envelope.kind}/{envelope.metadata.name}"
    model = KINDS.get(envelope.kind)
    if model is None:
        return None, [
            doc.problem(("kind",), f"unknown kind '{envelope.kind}': use one of {', '.join(KINDS)}")
        ]
    found = settings_errors(model, envelope.spec, ("spec",))
    if found:
        return None, problems_of(doc, found, resource)
    spec = model.model_validate(envelope.spec)
    return (
        Definition(
            envelope.kind,
            envelope.metadata.name,
            dict(envelope.metadata.labels),
            spec,
            {k: v for k, v in data.items() if k != "status"},
            doc.file,
            doc.line,
        ),
        [],
    )


def validate_batch(
    docs: list[SourceDoc],
    catalog: Catalog,
    environments: Mapping[str, Mapping[str, str]],
    products: set[str],
) -> list[Definition]:
    """All documents valid together, or a DefinitionError listing every problem.

    `environments` and `products` are what the store already holds; the batch's own
    definitions are added to them, so a flow and its environments can be applied together.
    """
    problems: list[Problem] = []
    parsed: list[tuple[SourceDoc, Definition]] = []
    seen: dict[str, SourceDoc] = {}
    named_only: list[tuple[str, str]] = []
    broken_flows: list[tuple[SourceDoc, list[Problem]]] = []
    for doc in docs:
        definition, found = parse_document(doc)
        problems.extend(found)
        if definition is None:
            named_only.extend(_kind_and_name(doc.data))
            if doc.data.get("kind") == "PromotionFlow":
                broken_flows.append((doc, found))
            continue
        if definition.ref in seen:
            first = seen[definition.ref]
            problems.append(
                doc.problem(
                    ("metadata", "name"),
                    f"{definition.ref} is defined twice (also at {first.file}:{first.line})",
                    definition.ref,
                )
            )
            continue
        seen[definition.ref] = doc
        parsed.append((doc, definition))

    # A definition with errors of its own still exists as far as the others are concerned:
    # its errors are reported, not a "not defined" for every reference to it besides.
    envs = dict(environments) | {name: {} for kind, name in named_only if kind == "Environment"}
    prods = set(products) | {name for kind, name in named_only if kind == "Product"}
    for _, d in parsed:
        if d.kind == "Environment":
            envs[d.name] = d.labels
        elif d.kind == "Product":
            prods.add(d.name)

    for doc, d in parsed:
        problems.extend(_check_references(doc, d, catalog, envs, prods))
    for doc, found in broken_flows:
        problems.extend(_graph_problems(doc, found, envs))
    if problems:
        raise DefinitionError(problems)
    return [d for _, d in parsed]


def _kind_and_name(data: Any) -> list[tuple[str, str]]:
    if not isinstance(data, dict) or not isinstance(data.get("metadata"), dict):
        return []
    kind, name = data.get("kind"), data["metadata"].get("name")
    return [(kind, name)] if isinstance(kind, str) and isinstance(name, str) else []


def _graph_problems(doc: SourceDoc, found: list[Problem], envs: Mapping[str, Any]) -> list[Problem]:
    """The DAG's problems (unknown environments, cycles, orphans) of a flow with errors of
    its own, from the nodes that can be read, so that they come in the same round; those
    at a field already reported are left out."""
    spec = doc.data.get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("triggerEnvironment"), str):
        return []
    nodes = []
    for raw in spec.get("environments") or []:
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            return []  # positions would not match: the schema errors say enough
        parents = raw.get("dependsOn") or []
        given = raw.get("channel")
        labels = given.get("labels") if isinstance(given, dict) else None
        channel = ChannelRef.model_construct(labels=labels) if isinstance(labels, dict) else None
        nodes.append(
            FlowNode.model_construct(
                name=raw["name"],
                channel=channel,
                dependsOn=[p for p in parents if isinstance(p, str)],
                policy=None,
            )
        )
    lenient = FlowSpec.model_construct(
        version="0", product="", triggerEnvironment=spec["triggerEnvironment"], environments=nodes
    )
    _, findings = build_graph(lenient, envs.keys())
    reported = {p.field for p in found}
    resource = f"PromotionFlow/{(doc.data.get('metadata') or {}).get('name', '')}"
    return [p for p in problems_of(doc, findings, resource) if p.field not in reported]


def _known(envs: Mapping[str, Any]) -> str:
    return f"use one of {', '.join(sorted(envs))}" if envs else "no environment is defined yet"


def _check_references(
    doc: SourceDoc,
    d: Definition,
    catalog: Catalog,
    envs: Mapping[str, Mapping[str, str]],
    prods: set[str],
) -> list[Problem]:
    raw_spec: dict[str, Any] = d.document.get("spec") or {}
    found: list[Finding] = []
    if d.kind == "PromotionPolicy":
        found += check_policy_body(raw_spec, ("spec",), catalog, envs)
        selector = (raw_spec.get("selector") or {}).get("environments") or {}
        for i, name in enumerate(selector.get("names") or []):
            if name not in envs:
                where: Path = ("spec", "selector", "environments", "names", i)
                found.append((where, f"environment '{name}' is not defined: {_known(envs)}"))
        return problems_of(doc, found, d.ref)
    if d.kind != "PromotionFlow":
        return []
    assert isinstance(d.spec, FlowSpec)
    if d.spec.product not in prods:
        found.append(
            (("spec", "product"), f"product '{d.spec.product}' is not defined: apply it first")
        )
    _, graph_findings = build_graph(d.spec, envs.keys())
    found.extend(graph_findings)
    for i, node in enumerate(raw_spec.get("environments") or []):
        channel = node.get("channel") if isinstance(node, dict) else None
        if isinstance(channel, dict) and isinstance(channel.get("labels"), dict):
            want = channel["labels"].items()
            if not any(want <= dict(labels).items() for labels in envs.values()):
                at: Path = ("spec", "environments", i, "channel", "labels")
                found.append((at, "no environment has all these labels: the channel is empty"))
        if isinstance(node, dict) and isinstance(node.get("policy"), dict):
            found.extend(
                check_policy_body(
                    node["policy"], ("spec", "environments", i, "policy"), catalog, envs
                )
            )
    hooks = raw_spec.get("hooks") or {}
    for hook in ("onStart", "onSuccess", "onFail"):
        found.extend(check_tasks(hooks.get(hook) or [], ("spec", "hooks", hook), catalog))
    return problems_of(doc, found, d.ref)
