"""What every gate is: a name, a settings model, and an evaluate function."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from conveyor.health.timeline import EntityHealth, Weekends
from conveyor.model.approval import Approval
from conveyor.model.gate import GateResult
from conveyor.model.release import ReleaseInfo


def _no_health(_env: str) -> dict[str, EntityHealth]:
    return {}


@dataclass(frozen=True)
class HealthRules:
    """The product's rollout criteria (seed 001), as the health gates apply them."""

    weekends: Weekends = field(default_factory=Weekends)
    healthy_threshold: float = 0.95
    unhealthy_threshold: float = 0.05


class GateSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


@dataclass(frozen=True)
class GateContext:
    """What a gate may look at. The engine builds it; gates never reach the store."""

    now: datetime
    release: ReleaseInfo
    release_created_at: datetime
    environment: str
    phase: Literal["entry", "verify"]
    upstream: list[str] = field(default_factory=list)  # environments of the parent nodes
    # When this release finished deploying to an environment (None: not there).
    deployed_at: Callable[[str], datetime | None] = lambda _env: None
    # Every environment's labels, for gates that choose environments by label.
    environments: dict[str, dict[str, str]] = field(default_factory=dict)
    # Each entity's health over this release's soak in an environment (declared entities
    # that never reported included, with no soak).
    entity_health: Callable[[str], dict[str, EntityHealth]] = _no_health
    health_rules: HealthRules = field(default_factory=HealthRules)
    # This promotion's approvals, rejections and window overrides; read only when asked.
    decisions: Callable[[], list[Approval]] = lambda: []
    # Who created, triggered or labelled the release (for separation of duties).
    release_actors: Callable[[], frozenset[str]] = lambda: frozenset()
    production: bool = False  # the environment's type is production

    def default_places(self) -> list[str]:
        """Where a gate looks when its settings name no environment: the upstream
        environments for an entry gate, this environment for a verification gate (or a root)."""
        if self.phase == "verify" or not self.upstream:
            return [self.environment]
        return list(self.upstream)


class Gate(Protocol):
    kind: ClassVar[str]
    Settings: ClassVar[type[GateSettings]]

    def evaluate(self, settings: Any, ctx: GateContext) -> GateResult: ...
