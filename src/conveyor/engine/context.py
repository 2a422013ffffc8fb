"""What gates and tasks see of a release: the template context and the gate context."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.orm import Session

from conveyor.clock import utc
from conveyor.engine import decisions, health, resources
from conveyor.engine.reportcache import ReportCache
from conveyor.errors import NotFound
from conveyor.gates import GateContext
from conveyor.health.timeline import EntityHealth
from conveyor.model.definitions import EnvironmentSpec, FlowSpec, PolicyBody, ProductSpec
from conveyor.model.release import ReleaseInfo, artifact_from_json
from conveyor.model.states import PromotionState
from conveyor.store.tables import PromotionRow, ReleaseRow


def release_info(release: ReleaseRow) -> ReleaseInfo:
    return ReleaseInfo(
        release.product,
        release.version,
        {k: artifact_from_json(v) for k, v in release.artifacts.items()},
        {str(k): str(v) for k, v in release.labels.items()},
    )


def flow_spec(release: ReleaseRow) -> FlowSpec:
    assert release.flow_document is not None, "a triggered release keeps its flow"
    return FlowSpec.model_validate(release.flow_document.get("spec") or {})


def policy_body(promotion: PromotionRow) -> PolicyBody:
    return policy_from(promotion.policy)


def policy_from(snapshot: dict[str, Any]) -> PolicyBody:
    """The policy body of a promotion's stored policy snapshot."""
    return PolicyBody.model_validate(snapshot.get("body") or {})


def template_context(
    release: ReleaseRow,
    environment: str | None,
    envs: Mapping[str, tuple[EnvironmentSpec, dict[str, str]]],
) -> dict[str, Any]:
    info = release_info(release)
    ctx: dict[str, Any] = {
        "release": {
            "product": info.product,
            "version": info.version,
            "labels": info.labels,
            "id": release.id,
        },
        "artifacts": {k: a.as_context() for k, a in info.artifacts.items()},
        "product": {"name": info.product},
        "flow": {
            "name": release.flow or "",
            "version": (release.flow_document or {}).get("spec", {}).get("version", ""),
        },
    }
    if environment is not None:
        spec, labels = envs.get(environment, (None, {}))
        ctx["environment"] = {
            "name": environment,
            "type": spec.type if spec else "",
            "labels": labels,
            "settings": dict(spec.settings) if spec else {},
        }
    return ctx


def deployed_at(promotions: Sequence[PromotionRow], environment: str) -> datetime | None:
    """When the release of `promotions` (all of one release) finished deploying to an
    environment, if it did and still holds it."""
    for p in promotions:
        if (
            p.environment == environment
            and p.deployed_at is not None
            and p.state in (PromotionState.VERIFYING, PromotionState.SUCCEEDED)
        ):
            return utc(p.deployed_at)
    return None


def gate_context(
    session: Session,
    release: ReleaseRow,
    promotion: PromotionRow,
    siblings: Sequence[PromotionRow],
    upstream: list[str],
    phase: Literal["entry", "verify"],
    now: datetime,
    envs: Mapping[str, tuple[EnvironmentSpec, dict[str, str]]],
    cache: dict[tuple[str, str, str], dict[str, EntityHealth]] | None = None,
    reports: ReportCache | None = None,
) -> GateContext:
    try:
        product = resources.get_current(session, "Product", release.product).spec
    except NotFound:  # deleted since the release was made: the seed's default criteria
        product = ProductSpec()
    assert isinstance(product, ProductSpec)

    known = {} if cache is None else cache

    def entity_health(environment: str) -> dict[str, EntityHealth]:
        key = (environment, release.product, release.version)
        if key not in known:
            try:
                known[key] = health.show(
                    session, environment, release.product, release.version, now, None, reports
                )
            except NotFound:  # an environment deleted since: it has no entities to offer
                known[key] = {}
        return known[key]

    return GateContext(
        now=now,
        release=release_info(release),
        release_created_at=utc(release.created_at),
        environment=promotion.environment,
        phase=phase,
        upstream=upstream,
        deployed_at=lambda env: deployed_at(siblings, env),
        environments={name: labels for name, (_, labels) in envs.items()},
        entity_health=entity_health,
        health_rules=health.rules_of(product),
        decisions=lambda: decisions.decisions(session, promotion.id),
        release_actors=lambda: decisions.release_actors(session, release),
        production=envs[promotion.environment][0].type == "production"
        if promotion.environment in envs
        else False,
    )
