"""What people do to releases: create, trigger, label, retry, terminate."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from conveyor.engine import due, resources
from conveyor.engine.transitions import move_promotion
from conveyor.errors import Conflict, DefinitionError, NotFound, Problem
from conveyor.model.flow import build_graph
from conveyor.model.policy import Target, merge
from conveyor.model.release import (
    artifact_to_json,
    canonical_version,
    newer,
    parse_version,
    pin_artifact,
)
from conveyor.model.states import PromotionState as P
from conveyor.model.states import ReleaseStatus as R
from conveyor.model.states import TaskStatus as T
from conveyor.model.window import WindowDef
from conveyor.store import audit
from conveyor.store.tables import PromotionRow, ReleaseRow, TaskRunRow


def parse_ref(ref: str) -> tuple[str, str]:
    product, sep, version = ref.partition("@")
    if not sep or not product or not version:
        raise DefinitionError(f"'{ref}' is not a release: write PRODUCT@VERSION, e.g. web@1.2.3")
    return product, version


def stored_version(version: str) -> str:
    """The canonical spelling when `version` is a version (`v1.2.3` is `1.2.3`), as releases
    are stored; any other text as it is."""
    with contextlib.suppress(ValueError):
        return canonical_version(version)
    return version


def find(session: Session, ref: str) -> ReleaseRow:
    product, version = parse_ref(ref)
    version = stored_version(version)
    row = session.scalars(
        select(ReleaseRow).where(ReleaseRow.product == product, ReleaseRow.version == version)
    ).first()
    if row is None:
        raise NotFound(f"release {ref} does not exist (see `conveyor release list {product}`)")
    return row


def create(
    session: Session,
    product: str,
    version: str,
    artifacts: dict[str, str],
    labels: dict[str, str],
    actor: str,
    now: datetime,
) -> ReleaseRow:
    spec = resources.get_current(session, "Product", product).spec
    problems: list[Problem] = []
    try:
        version = canonical_version(version)
    except ValueError as exc:
        problems.append(Problem(str(exc), "command line", None, "--version"))
    declared = {a.name: a for a in spec.artifacts}
    pinned: dict[str, Any] = {}
    for name, value in artifacts.items():
        if declared and name not in declared:
            problems.append(
                Problem(
                    f"product {product} has no artifact '{name}'; it has {', '.join(declared)}",
                    "command line",
                    None,
                    "--artifact",
                )
            )
            continue
        try:
            pinned[name] = artifact_to_json(pin_artifact(name, value, declared.get(name)))
        except ValueError as exc:
            problems.append(Problem(str(exc), "command line", None, "--artifact"))
    missing = sorted(set(declared) - set(artifacts))
    if missing:
        problems.append(
            Problem(
                f"every artifact of {product} must be pinned; missing: {', '.join(missing)}",
                "command line",
                None,
                "--artifact",
            )
        )
    if problems:
        raise DefinitionError(problems)
    exists = session.scalars(
        select(ReleaseRow).where(ReleaseRow.product == product, ReleaseRow.version == version)
    ).first()
    if exists is not None:
        raise Conflict(
            f"release {product}@{version} already exists: releases are immutable, "
            "create a new version"
        )
    row = ReleaseRow(
        product=product,
        version=version,
        artifacts=pinned,
        labels=dict(labels),
        status=R.CREATED,
        created_by=actor,
        created_at=now,
        hooks_done=[],
    )
    session.add(row)
    session.flush()
    audit.append(
        session,
        now,
        actor,
        "release.create",
        f"{product}@{version}",
        None,
        {"artifacts": pinned, "labels": labels},
    )
    for flow in resources.list_current(session, "PromotionFlow"):
        if flow.spec.product == product and flow.spec.autoTrigger:
            # A full queue must not lose the release: it is kept, untriggered, with the reason.
            try:
                with session.begin_nested():
                    trigger(session, flow.name, row, actor, now)
            except Conflict as exc:
                row.message = f"not triggered on {flow.name}: {exc}"
    return row


def trigger(
    session: Session, flow_name: str, release: ReleaseRow, actor: str, now: datetime
) -> ReleaseRow:
    flow, revision, document = resources.flow(session, flow_name)
    ref = f"{release.product}@{release.version}"
    if flow.product != release.product:
        raise Conflict(f"flow {flow_name} promotes {flow.product}, not {release.product}")
    if release.status != R.CREATED:
        raise Conflict(
            f"release {ref} was already triggered (it is {release.status}); "
            "use `conveyor release retry` for a failed one"
        )
    running = (ReleaseRow.flow == flow_name, ReleaseRow.status == R.RUNNING)
    in_flight: list[ReleaseRow] = []
    if flow.concurrency.mode == "supersede":
        in_flight = list(session.scalars(select(ReleaseRow).where(*running)))
    count = session.scalar(select(func.count()).select_from(ReleaseRow).where(*running)) or 0
    if flow.concurrency.mode == "queue" and count >= flow.concurrency.limit:
        raise Conflict(
            f"flow {flow_name} already has {count} releases in flight, its queue "
            f"limit of {flow.concurrency.limit}: wait for some to finish or raise "
            "spec.concurrency.limit"
        )
    envs = resources.environments(session)
    graph, findings = build_graph(flow, envs.keys())
    if findings:
        raise Conflict(f"flow {flow_name} no longer matches the environments: {findings[0][1]}")
    policies = resources.policies(session)
    product = resources.products(session)[release.product]
    for node in graph.order():
        n = graph.nodes[node]
        targets = n.environments({k: labels for k, (_, labels) in envs.items()})
        if not targets:
            raise Conflict(
                f"node {node} of flow {flow_name} selects no environment: label some "
                f"environments {n.channel.labels if n.channel else ''}"
            )
        for env in targets:
            spec, labels = envs[env]
            merged = merge(
                policies,
                Target(release.product, env, spec.type, labels),
                n.policy,
                f"PromotionFlow/{flow_name} node {node}",
            )
            session.add(
                PromotionRow(
                    release_id=release.id,
                    node=node,
                    environment=env,
                    state=P.PENDING,
                    state_since=now,
                    cursor=0,
                    generation=0,
                    policy=with_windows(merged.snapshot(), spec.windows + product.windows),
                )
            )
    release.flow, release.flow_revision, release.flow_document = flow_name, revision, document
    release.status, release.triggered_at, release.triggered_by = R.RUNNING, now, actor
    due.mark(session, release, now)
    audit.append(
        session,
        now,
        actor,
        "release.trigger",
        ref,
        {"status": R.CREATED},
        {"status": R.RUNNING, "flow": flow_name, "flowRevision": revision},
    )
    if flow.concurrency.mode == "supersede":
        for older in in_flight:
            if newer(release.version, older.version):
                _supersede(session, older, release, actor, now)
                due.mark(session, older, now)
    session.flush()
    return release


def with_windows(snapshot: dict[str, Any], windows: list[WindowDef]) -> dict[str, Any]:
    """The environment's and the product's windows as one more entry gate, `window`: part
    of what the promotion was triggered with, like the rest of its policy."""
    if not windows:
        return snapshot
    gate = {"window": {"windows": [w.model_dump(mode="json") for w in windows]}}
    body = dict(snapshot["body"])
    body["gates"] = [*(body.get("gates") or []), gate]
    sources = dict(snapshot["sources"])
    sources["gates"] = sources.get("gates", "the environment's and product's windows")
    return {**snapshot, "body": body, "sources": sources}


def _supersede(
    session: Session, older: ReleaseRow, newer_release: ReleaseRow, actor: str, now: datetime
) -> None:
    """Stop an older release where it has not deployed; what is deploying finishes."""
    for p in session.scalars(select(PromotionRow).where(PromotionRow.release_id == older.id)):
        if p.state in (P.PENDING, P.WAITING):
            move_promotion(
                session,
                now,
                actor,
                older,
                p,
                P.SUPERSEDED,
                f"superseded by {newer_release.version}",
            )


def set_labels(
    session: Session,
    release: ReleaseRow,
    labels: dict[str, str],
    remove: list[str],
    actor: str,
    now: datetime,
) -> None:
    before = dict(release.labels)
    after = {k: v for k, v in {**before, **labels}.items() if k not in remove}
    release.labels = after
    due.mark(session, release, now)
    audit.append(
        session,
        now,
        actor,
        "release.label",
        f"{release.product}@{release.version}",
        {"labels": before},
        {"labels": after},
    )


def retry(session: Session, release: ReleaseRow, actor: str, now: datetime) -> list[str]:
    """Resume a failed release at the point of failure; succeeded nodes are not redone."""
    if release.status != R.FAILED:
        raise Conflict(
            f"release {release.product}@{release.version} is {release.status}; only a "
            "failed release can be retried"
        )
    ref = f"{release.product}@{release.version}"
    failed = [
        p
        for p in session.scalars(select(PromotionRow).where(PromotionRow.release_id == release.id))
        if p.state in (P.FAILED, P.REJECTED)
    ]
    for p in failed:
        ahead = _newer_deployed(session, release, p.environment)
        if ahead is not None:
            raise Conflict(
                f"{ref} cannot be retried: {release.product}@{ahead} already runs in "
                f"{p.environment}, and an older release never replaces a newer one; terminate "
                f"it (`conveyor release terminate {ref}`), or roll {p.environment} back first"
            )
    retried = []
    for p in failed:
        _requeue(session, TaskRunRow.promotion_id == p.id, TaskRunRow.generation == p.generation)
        move_promotion(session, now, actor, release, p, P.WAITING, "retried")
        p.fail_hooks_pending = False
        retried.append(p.environment)
    release.hooks_done = [k for k in release.hooks_done if k != "release.onFail"]
    _requeue(session, TaskRunRow.release_id == release.id, TaskRunRow.scope == "release")
    release.status, release.finished_at, release.message = R.RUNNING, None, ""
    due.mark(session, release, now)
    audit.append(
        session,
        now,
        actor,
        "release.retry",
        f"{release.product}@{release.version}",
        {"status": R.FAILED},
        {"status": R.RUNNING, "retried": retried},
    )
    return retried


def _requeue(session: Session, *where: ColumnElement[bool]) -> None:
    """Failed and cancelled tasks run again; onFail hooks that ran are forgotten, so they
    run again if the retry fails too (the audit trail keeps their first run)."""
    rows = session.scalars(select(TaskRunRow).where(*where))
    for row in rows:
        if row.stage in ("hook.onFail", "release.onFail"):
            session.delete(row)
        elif row.status in (T.FAILED, T.CANCELLED):
            row.status, row.attempt, row.error = T.QUEUED, 0, ""


def terminate(session: Session, release: ReleaseRow, actor: str, now: datetime) -> None:
    """Stop a release; the engine cancels its running tasks on its next pass."""
    if release.status not in (R.RUNNING, R.FAILED, R.CREATED):
        raise Conflict(f"release {release.product}@{release.version} is already {release.status}")
    for p in session.scalars(select(PromotionRow).where(PromotionRow.release_id == release.id)):
        if not P(p.state).final:
            move_promotion(session, now, actor, release, p, P.TERMINATED, f"terminated by {actor}")
    for row in session.scalars(
        select(TaskRunRow).where(
            TaskRunRow.release_id == release.id,
            TaskRunRow.status.in_([T.QUEUED, T.RETRYING, T.POLLING]),
        )
    ):
        row.status, row.finished_at = T.CANCELLED, now
    before = release.status
    release.status, release.finished_at = R.TERMINATED, now
    if release.flow_document is not None:  # one never triggered gives the engine nothing to do
        due.mark(session, release, now)
    audit.append(
        session,
        now,
        actor,
        "release.terminate",
        f"{release.product}@{release.version}",
        {"status": before},
        {"status": R.TERMINATED},
    )


def _newer_deployed(session: Session, release: ReleaseRow, environment: str) -> str | None:
    """The newest version of the release's product above it that succeeded in `environment`."""
    versions = session.scalars(
        select(ReleaseRow.version)
        .join(PromotionRow, PromotionRow.release_id == ReleaseRow.id)
        .where(
            PromotionRow.environment == environment,
            PromotionRow.state == P.SUCCEEDED,
            ReleaseRow.product == release.product,
        )
    )
    ahead = [v for v in versions if newer(v, release.version)]
    return max(ahead, key=parse_version) if ahead else None


def entry_environments(session: Session, flow_name: str) -> list[str]:
    """The environments of a flow's first nodes: where triggering it starts a promotion."""
    flow, _, _ = resources.flow(session, flow_name)
    envs = resources.environments(session)
    graph, _ = build_graph(flow, envs.keys())
    labels = {k: v for k, (_, v) in envs.items()}
    roots = graph.levels()[0] if graph.nodes else []
    return sorted({env for node in roots for env in graph.nodes[node].environments(labels)})
