"""Definitions in the store: apply (all or nothing, one revision each), get, delete."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from conveyor.engine import due
from conveyor.engine.registry import Registry
from conveyor.errors import Conflict, DefinitionError, NotFound, Problem
from conveyor.model.definitions import (
    KINDS,
    EnvironmentSpec,
    FlowSpec,
    PolicySpec,
    ProductSpec,
    Strict,
)
from conveyor.spec import Definition, SourceDoc, validate_batch
from conveyor.store import audit
from conveyor.store.tables import ResourceRow


@dataclass(frozen=True)
class Current:
    """The newest revision of one definition."""

    kind: str
    name: str
    revision: int
    labels: dict[str, str]
    spec: Any
    document: dict[str, Any]
    applied_by: str
    applied_at: datetime

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}"


def _latest(session: Session, kind: str | None = None) -> list[ResourceRow]:
    newest = (
        select(ResourceRow.kind, ResourceRow.name, func.max(ResourceRow.revision).label("rev"))
        .group_by(ResourceRow.kind, ResourceRow.name)
        .subquery()
    )
    q = (
        select(ResourceRow)
        .join(
            newest,
            (ResourceRow.kind == newest.c.kind)
            & (ResourceRow.name == newest.c.name)
            & (ResourceRow.revision == newest.c.rev),
        )
        .where(ResourceRow.deleted.is_(False))
    )
    if kind:
        q = q.where(ResourceRow.kind == kind)
    return list(session.scalars(q.order_by(ResourceRow.kind, ResourceRow.name)))


def _current(row: ResourceRow) -> Current:
    doc = row.document
    spec: Strict = KINDS[row.kind].model_validate(doc.get("spec") or {})
    labels = dict((doc.get("metadata") or {}).get("labels") or {})
    return Current(
        row.kind, row.name, row.revision, labels, spec, doc, row.applied_by, row.applied_at
    )


# Definitions change only through `apply` and `delete`, each adding a row. A session (one
# pass, one command) reads them once per kind, parsed; and sessions share what they parsed
# for as long as the newest resource row is the same (one cheap query instead of parsing
# every definition again). A session that wrote definitions keeps its own: it may roll back.
_CACHE = "conveyor.resources.current"
_WROTE = "conveyor.resources.wrote"
_SHARED: WeakKeyDictionary[Engine, tuple[int, dict[str | None, list[Current]]]] = (
    WeakKeyDictionary()
)
_SHARED_LOCK = threading.Lock()


def list_current(session: Session, kind: str | None = None) -> list[Current]:
    cache: dict[str | None, list[Current]] | None = session.info.get(_CACHE)
    if cache is None:
        cache = session.info[_CACHE] = _shared(session)
    if kind not in cache:
        cache[kind] = [_current(r) for r in _latest(session, kind)]
    return cache[kind]


def _shared(session: Session) -> dict[str | None, list[Current]]:
    if session.info.get(_WROTE):
        return {}
    engine = session.get_bind().engine
    stamp = session.scalar(select(func.max(ResourceRow.id))) or 0
    with _SHARED_LOCK:
        held = _SHARED.get(engine)
        if held is None or held[0] != stamp:
            held = _SHARED[engine] = (stamp, {})
        return held[1]


def _forget(session: Session) -> None:
    session.info.pop(_CACHE, None)
    session.info[_WROTE] = True


def get_current(session: Session, kind: str, name: str) -> Current:
    for c in list_current(session, kind):
        if c.name == name:
            return c
    raise NotFound(f"{kind}/{name} does not exist (see `conveyor get {kind}`)")


def environments(session: Session) -> dict[str, tuple[EnvironmentSpec, dict[str, str]]]:
    return {c.name: (c.spec, c.labels) for c in list_current(session, "Environment")}


def policies(session: Session) -> dict[str, PolicySpec]:
    return {c.name: c.spec for c in list_current(session, "PromotionPolicy")}


def products(session: Session) -> dict[str, ProductSpec]:
    return {c.name: c.spec for c in list_current(session, "Product")}


def flow(session: Session, name: str) -> tuple[FlowSpec, int, dict[str, Any]]:
    c = get_current(session, "PromotionFlow", name)
    return c.spec, c.revision, c.document


def apply(
    session: Session, docs: list[SourceDoc], registry: Registry, actor: str, now: Any
) -> list[tuple[Definition, str]]:
    """Validate the batch against what is stored, then write it; unchanged ones are skipped.

    Returns each definition with what happened to it: created, configured or unchanged.
    """
    envs = {name: labels for name, (_, labels) in environments(session).items()}
    validated = validate_batch(docs, registry, envs, set(products(session)))
    _one_auto_trigger_per_product(session, validated)
    current = {(r.kind, r.name): r for r in _latest(session)}
    revisions = dict(
        session.execute(
            select(
                ResourceRow.kind + "/" + ResourceRow.name, func.max(ResourceRow.revision)
            ).group_by(ResourceRow.kind, ResourceRow.name)
        ).all()
    )
    outcome: list[tuple[Definition, str]] = []
    for d in validated:
        old = current.get((d.kind, d.name))
        if old is not None and old.document == d.document:
            outcome.append((d, "unchanged"))
            continue
        revision = int(revisions.get(d.ref) or 0) + 1
        session.add(
            ResourceRow(
                kind=d.kind,
                name=d.name,
                revision=revision,
                document=d.document,
                source=f"{d.file}:{d.line}",
                applied_by=actor,
                applied_at=now,
            )
        )
        audit.append(
            session,
            now,
            actor,
            "apply",
            d.ref,
            old.document if old else None,
            {"revision": revision, **d.document},
        )
        outcome.append((d, "configured" if old else "created"))
    if any(result != "unchanged" for _, result in outcome):
        due.definitions_changed(session, now)
    _forget(session)
    return outcome


def _one_auto_trigger_per_product(session: Session, batch: list[Definition]) -> None:
    """A release follows one flow, so only one flow per product may start it by itself."""
    flows: dict[str, tuple[FlowSpec, Definition | None]] = {
        c.name: (c.spec, None) for c in list_current(session, "PromotionFlow")
    }
    flows.update({d.name: (d.spec, d) for d in batch if isinstance(d.spec, FlowSpec)})
    auto: dict[str, list[str]] = {}
    for name, (spec, _) in sorted(flows.items()):
        if spec.autoTrigger:
            auto.setdefault(spec.product, []).append(name)
    problems = [
        Problem(
            f"product {spec.product} would have several flows with autoTrigger "
            f"({', '.join(auto[spec.product])}): a release follows one flow, so set "
            "autoTrigger on one of them only",
            d.file,
            d.line,
            "spec.autoTrigger",
            d.ref,
        )
        for spec, d in flows.values()
        if d is not None and spec.autoTrigger and len(auto[spec.product]) > 1
    ]
    if problems:
        raise DefinitionError(problems)


def delete(session: Session, kind: str, name: str, actor: str, now: Any) -> int:
    c = get_current(session, kind, name)
    if kind == "Environment" or kind == "Product":
        for f in list_current(session, "PromotionFlow"):
            spec: FlowSpec = f.spec
            used = {spec.triggerEnvironment, *(n.name for n in spec.environments)}
            if (kind == "Environment" and name in used) or (
                kind == "Product" and spec.product == name
            ):
                raise Conflict(
                    f"{kind}/{name} is used by PromotionFlow/{f.name}: change or delete "
                    "that flow first"
                )
    session.add(
        ResourceRow(
            kind=kind,
            name=name,
            revision=c.revision + 1,
            document=c.document,
            deleted=True,
            applied_by=actor,
            applied_at=now,
        )
    )
    due.definitions_changed(session, now)
    audit.append(session, now, actor, "delete", c.ref, c.document, None)
    _forget(session)
    return c.revision + 1
