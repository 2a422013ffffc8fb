"""`conveyor rollback ENV --to VERSION`: put an older release back in one environment.

A rollback is a promotion of the older release to that environment, outside its flow,
that skips the entry gates and the "never older over newer" rule (a person asked for it).
It either runs the environment's workflow with the older release (the normal way), or
reverts the commits that promoted the newer releases (`--revert`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from conveyor.engine import due, releases, resources
from conveyor.engine.transitions import move_promotion
from conveyor.errors import Conflict, NotFound
from conveyor.model.definitions import PolicyBody
from conveyor.model.policy import MergedPolicy, Target, merge
from conveyor.model.release import newer
from conveyor.model.states import PromotionState as P
from conveyor.store import audit
from conveyor.store.tables import PromotionRow, ReleaseRow

ROLLBACK_NODE = "rollback-{}"  # a rollback's node, numbered per release; `rollback` says it is one
# Actions whose commits a `--revert` rollback undoes.
COMMITTING = ("git.kustomize-set-image", "git.yaml-set", "git.merge")


def deployed(
    session: Session, environment: str, product: str
) -> list[tuple[PromotionRow, ReleaseRow]]:
    """Every succeeded deployment of a product to an environment, newest first."""
    rows = session.execute(
        select(PromotionRow, ReleaseRow)
        .join(ReleaseRow, PromotionRow.release_id == ReleaseRow.id)
        .where(
            PromotionRow.environment == environment,
            PromotionRow.state == P.SUCCEEDED,
            ReleaseRow.product == product,
        )
        .order_by(PromotionRow.finished_at.desc(), PromotionRow.id.desc())
    ).all()
    return [(p, r) for p, r in rows]


def current_release(session: Session, environment: str) -> ReleaseRow | None:
    """The release that most recently succeeded in `environment`, whatever its product."""
    return session.scalars(
        select(ReleaseRow)
        .join(PromotionRow, PromotionRow.release_id == ReleaseRow.id)
        .where(PromotionRow.environment == environment, PromotionRow.state == P.SUCCEEDED)
        .order_by(PromotionRow.finished_at.desc(), PromotionRow.id.desc())
        .limit(1)
    ).first()


def rollback(
    session: Session, environment: str, to: str, revert: bool, actor: str, now: datetime
) -> PromotionRow:
    resources.get_current(session, "Environment", environment)  # NotFound before anything
    product, version = _target(session, environment, to)
    target = releases.find(session, f"{product}@{version}")
    history = deployed(session, environment, product)
    if not any(r.id == target.id for _, r in history):
        raise Conflict(
            f"{product}@{version} was never deployed to {environment}: roll back to a release "
            "that was (see `conveyor release list`)"
        )
    current = history[0][1]
    if current.id == target.id:
        raise Conflict(f"{product}@{version} is already what {environment} runs")
    busy = session.scalars(
        select(PromotionRow).where(
            PromotionRow.environment == environment,
            PromotionRow.state.in_([P.RUNNING, P.VERIFYING]),
        )
    ).first()
    if busy is not None:
        raise Conflict(f"{environment} is deploying now: wait for it, or terminate that release")
    return start(session, environment, target, current, history, revert, actor, now)


def start(
    session: Session,
    environment: str,
    target: ReleaseRow,
    current: ReleaseRow,
    history: list[tuple[PromotionRow, ReleaseRow]],
    revert: bool,
    actor: str,
    now: datetime,
    reason: str = "",
) -> PromotionRow:
    """Create the rollback promotion of `target` to `environment`, where `current` runs
    (`history`: what was deployed there, newest first, for `revert`), and set it waiting;
    the engine runs it."""
    env = resources.get_current(session, "Environment", environment)
    merged = merge(
        resources.policies(session),
        Target(target.product, environment, env.spec.type, env.labels),
    )
    body = _revert_policy(merged.body, history, target) if revert else merged.body
    # Gates guard promotions going forward; a rollback is someone stopping the bleeding.
    body = body.model_copy(update={"gates": None})
    sources = {k: "rollback" if revert else v for k, v in merged.sources.items()}
    own = list(session.scalars(select(PromotionRow).where(PromotionRow.release_id == target.id)))
    count = sum(1 for p in own if p.rollback)
    taken = {p.node for p in own if p.environment == environment}
    while ROLLBACK_NODE.format(count + 1) in taken:  # a flow node may be named rollback-N too
        count += 1
    p = PromotionRow(
        release_id=target.id,
        node=ROLLBACK_NODE.format(count + 1),
        rollback=True,
        environment=environment,
        state=P.PENDING,
        state_since=now,
        cursor=0,
        generation=0,
        policy=MergedPolicy(body, sources, merged.applied).snapshot(
            rollback={"from": current.version, "revert": revert, "by": actor}
        ),
    )
    session.add(p)
    session.flush()
    due.mark(session, target, now)
    after: dict[str, Any] = {"to": target.version, "revert": revert}
    if reason:
        after["reason"] = reason
    audit.append(
        session,
        now,
        actor,
        "rollback",
        f"{target.product}@{target.version}/{environment}",
        {"deployed": current.version},
        after,
    )
    move_promotion(
        session, now, actor, target, p, P.WAITING, reason or f"rollback from {current.version}"
    )
    return p


def _target(session: Session, environment: str, to: str) -> tuple[str, str]:
    if "@" in to:
        return releases.parse_ref(to)
    products = sorted(
        {
            r.product
            for _, r in session.execute(
                select(PromotionRow, ReleaseRow)
                .join(ReleaseRow, PromotionRow.release_id == ReleaseRow.id)
                .where(PromotionRow.environment == environment, PromotionRow.state == P.SUCCEEDED)
            ).all()
        }
    )
    if len(products) != 1:
        raise NotFound(
            f"cannot tell which product to roll back in {environment} "
            f"({', '.join(products) or 'none deployed'}): write --to PRODUCT@VERSION"
        )
    return products[0], to


def _revert_policy(
    body: PolicyBody, history: list[tuple[PromotionRow, ReleaseRow]], target: ReleaseRow
) -> PolicyBody:
    """A workflow that reverts the promotion commits of every release deployed after `target`."""
    places: dict[tuple[str, str], dict[str, Any]] = {}
    for step in body.workflow.steps if body.workflow else []:
        for task in step.tasks:
            if task.uses in COMMITTING:
                repo, branch = task.with_.get("repo"), task.with_.get("branch", "main")
                places.setdefault((str(repo), str(branch)), dict(task.with_))
    if not places:
        raise Conflict(
            "--revert needs a workflow that commits (git.kustomize-set-image, git.yaml-set, "
            "git.merge); this environment's has none: roll back without --revert"
        )
    newer_ones = [r for _, r in history if r.id != target.id and newer(r.version, target.version)]
    keep = ("repo", "branch", "author", "committer", "tokenEnv")
    steps = []
    # Newest first, one release a step: each revert applies on top of the one before.
    for version in dict.fromkeys(r.version for r in newer_ones):
        tasks = [
            {
                "name": f"revert-{n}",
                "uses": "git.revert",
                "with": {
                    **{k: v for k, v in settings.items() if k in keep},
                    "repo": repo,
                    "branch": branch,
                    "release": f"{target.product}@{version}",
                },
            }
            for n, ((repo, branch), settings) in enumerate(sorted(places.items()))
        ]
        steps.append({"name": f"revert-{version.replace('.', '-')}", "tasks": tasks})
    return PolicyBody.model_validate({"workflow": {"steps": steps}, "verify": body.verify})


def recall_newer(
    session: Session, now: datetime, actor: str, p: PromotionRow, release: ReleaseRow
) -> None:
    """After a rollback succeeded, the newer releases no longer run in that environment."""
    for other, other_release in deployed(session, p.environment, release.product):
        if other.id != p.id and newer(other_release.version, release.version):
            move_promotion(
                session,
                now,
                actor,
                other_release,
                other,
                P.RECALLED,
                f"rolled back to {release.version}",
            )
