"""Approvals, rejections and window overrides: people's decisions on one promotion."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from conveyor.engine import due, releases, resources
from conveyor.engine.context import flow_spec, policy_body
from conveyor.engine.decisions import decisions, release_actors
from conveyor.engine.transitions import move_promotion
from conveyor.errors import Conflict, DefinitionError, Forbidden, NotFound, Problem
from conveyor.gates.approval import ApprovalSettings
from conveyor.gates.window import WindowSettings
from conveyor.model.access import Identity
from conveyor.model.approval import acting, counts_for_some_rule
from conveyor.model.flow import build_graph
from conveyor.model.plan import build_plan
from conveyor.model.states import PromotionState as P
from conveyor.model.window import decide, overridable
from conveyor.store import audit
from conveyor.store.tables import ApprovalRow, PromotionRow, ReleaseRow

# Before the promotion has passed its gates: a decision still matters.
_OPEN = (P.PENDING, P.WAITING)


def find(session: Session, ref: str) -> tuple[ReleaseRow, PromotionRow]:
    """`shop@1.2.0/prod`: the flow's promotion of that release to that environment."""
    release_ref, sep, environment = ref.rpartition("/")
    if not sep or not release_ref or not environment:
        raise DefinitionError(
            Problem(
                f"'{ref}' is not RELEASE/ENVIRONMENT, e.g. shop@1.2.0/prod",
                "command line",
                None,
                "PROMOTION",
            )
        )
    release = releases.find(session, release_ref)
    promotion = session.scalars(
        select(PromotionRow)
        .where(
            PromotionRow.release_id == release.id,
            PromotionRow.environment == environment,
            PromotionRow.rollback.is_(False),
        )
        .order_by(PromotionRow.id.desc())
    ).first()
    if promotion is None:
        raise NotFound(f"release {release_ref} has no promotion to {environment}")
    return release, promotion


def _gate_settings(promotion: PromotionRow, kind: str) -> list[dict[str, object]]:
    plan = build_plan(policy_body(promotion))
    return [g[kind] for stage in plan.stages for g in stage.gates if kind in g]


def approval_rules(promotion: PromotionRow) -> list[ApprovalSettings]:
    return [ApprovalSettings.model_validate(s) for s in _gate_settings(promotion, "approval")]


@dataclass(frozen=True)
class Decider:
    """Who decides: their name and groups (the store's and their login's)."""

    identity: Identity
    groups: Sequence[str]


def _check_open(ref: str, promotion: PromotionRow, what: str) -> None:
    if P(promotion.state) not in _OPEN:
        raise Conflict(f"promotion {ref} is {promotion.state}: it is past the point of {what}")


def record_decision(
    session: Session,
    release: ReleaseRow,
    promotion: PromotionRow,
    who: Decider,
    verdict: str,
    comment: str,
    now: datetime,
) -> None:
    """Record an approval or a rejection; a rejection ends the promotion `rejected` and
    skips the promotions after it in the flow."""
    ref = f"{release.product}@{release.version}/{promotion.environment}"
    user = who.identity.user
    gates = approval_rules(promotion)
    if not gates:
        raise Conflict(f"promotion {ref} has no approval gate: nothing to {verdict}")
    _check_open(ref, promotion, "approval")
    if not any(counts_for_some_rule(g.rules(), user, who.groups) for g in gates):
        wanted = "; ".join(str(r) for g in gates for r in g.rules())
        raise Forbidden(f"{user}'s {verdict} would count for no rule of {ref}: it needs {wanted}")
    production = _is_production(session, promotion.environment)
    involved = {acting(a) for a in release_actors(session, release)}
    if any(g.separated(production) for g in gates) and user in involved:
        raise Forbidden(
            f"{user} created, triggered or labelled {release.product}@{release.version}: "
            f"separation of duties says someone else must {verdict} {ref}"
        )
    row = ApprovalRow(
        promotion_id=promotion.id,
        user=user,
        groups=list(who.groups),
        verdict=verdict,
        comment=comment,
        at=now,
    )
    _add(session, ref, row)
    actor = who.identity.recorded
    audit.append(
        session,
        now,
        actor,
        f"promotion.{verdict}",
        ref,
        after={"comment": comment} if comment else None,
    )
    if verdict == "reject":
        _reject(session, release, promotion, actor, comment, now)
    due.mark(session, release, now)


def _add(session: Session, ref: str, row: ApprovalRow) -> None:
    """One decision a person on a promotion: the table's unique key says so, even when
    two people's commands race."""
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        raise Conflict(f"{row.user} has already decided on {ref}: one decision a person") from None


def _is_production(session: Session, environment: str) -> bool:
    spec = resources.environments(session).get(environment)
    return spec is not None and spec[0].type == "production"


def _reject(
    session: Session,
    release: ReleaseRow,
    promotion: PromotionRow,
    actor: str,
    comment: str,
    now: datetime,
) -> None:
    reason = f"rejected by {actor}" + (f": {comment}" if comment else "")
    move_promotion(session, now, actor, release, promotion, P.REJECTED, reason)
    graph, _ = build_graph(flow_spec(release))
    after = {n for n in graph.nodes if promotion.node in graph.ancestors(n)}
    for p in session.scalars(select(PromotionRow).where(PromotionRow.release_id == release.id)):
        if p.node in after and not p.rollback and P(p.state) == P.PENDING:
            move_promotion(
                session, now, actor, release, p, P.SKIPPED, f"{promotion.environment} was rejected"
            )


def override_window(
    session: Session,
    release: ReleaseRow,
    promotion: PromotionRow,
    identity: Identity,
    reason: str,
    now: datetime,
) -> None:
    """Let one promotion through the windows that keep it out now, if they allow it."""
    ref = f"{release.product}@{release.version}/{promotion.environment}"
    _check_open(ref, promotion, "a window override")
    gates = [WindowSettings.model_validate(s) for s in _gate_settings(promotion, "window")]
    if not gates:
        raise Conflict(f"promotion {ref} has no window: nothing to override")
    for g in gates:
        decision = decide(g.windows, now)
        if not overridable(g.windows, decision):
            raise Forbidden(f"{ref}: {decision.reason}, and that window has no manualOverride")
    _add(
        session,
        ref,
        ApprovalRow(
            promotion_id=promotion.id,
            user=identity.user,
            groups=[],
            verdict="override",
            comment=reason,
            at=now,
        ),
    )
    audit.append(session, now, identity.recorded, "window.override", ref, after={"reason": reason})
    due.mark(session, release, now)


def waiting_for(
    session: Session, identity: Identity, groups: Sequence[str]
) -> list[tuple[str, str, str]]:
    """Promotions waiting at an approval gate that the caller could approve:
    (promotion, what it waits for, since)."""
    found = []
    rows = session.execute(
        select(ReleaseRow, PromotionRow)
        .join(PromotionRow, PromotionRow.release_id == ReleaseRow.id)
        .where(PromotionRow.state.in_([P.PENDING, P.WAITING]), PromotionRow.rollback.is_(False))
        .order_by(PromotionRow.id)
    )
    for release, promotion in rows:
        gates = approval_rules(promotion)
        if not gates or not any(
            counts_for_some_rule(g.rules(), identity.user, groups) for g in gates
        ):
            continue
        if any(d.user == identity.user for d in decisions(session, promotion.id)):
            continue
        ref = f"{release.product}@{release.version}/{promotion.environment}"
        rules = "; ".join(str(r) for g in gates for r in g.rules())
        found.append(
            (
                ref,
                promotion.wait_reason or f"{promotion.state}: needs {rules}",
                promotion.state_since.isoformat(),
            )
        )
    return found
