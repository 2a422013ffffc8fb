"""`canary`: promote on the health of the release's entities in chosen environments (seed 001).

Entity filters choose the pool (the entities of the environments they select); conditions
decide: promote when healthy, recall when unhealthy, a minimum entity count, a release
label. All conditions must hold to promote; the recall condition, once met, recalls the
release whatever the others say.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime, timedelta
from fractions import Fraction
from typing import ClassVar

from pydantic import Field, field_validator

from conveyor.gates.base import GateContext, GateSettings, HealthRules
from conveyor.health.timeline import EntityHealth, threshold_fraction
from conveyor.model.definitions import Duration
from conveyor.model.duration import check_limit, format_duration
from conveyor.model.gate import GateResult, Pass, Recall, Wait

MAX_SOAK = timedelta(days=13)
_US = timedelta(microseconds=1)


class LabelFilter(GateSettings):
    key: str = Field(min_length=1)
    values: list[str] | None = None

    def matches(self, labels: dict[str, str]) -> bool:
        """The label is there, with one of `values` when they are given."""
        if self.key not in labels:
            return False
        return not self.values or labels[self.key] in self.values


class EntityFilters(GateSettings):
    """Filters combine with AND. None given: the upstream environments (entry gate) or
    this environment (verification gate)."""

    withLabel: list[LabelFilter] = Field(default_factory=list)
    withoutLabel: list[LabelFilter] = Field(default_factory=list)
    environments: list[str] | None = None
    excludeEnvironments: list[str] = Field(default_factory=list)

    def given(self) -> bool:
        return bool(
            self.withLabel
            or self.withoutLabel
            or self.environments is not None
            or self.excludeEnvironments
        )

    def choose(self, environments: dict[str, dict[str, str]]) -> list[str]:
        return sorted(
            name
            for name, labels in environments.items()
            if all(f.matches(labels) for f in self.withLabel)
            and not any(f.matches(labels) for f in self.withoutLabel)
            and (self.environments is None or name in self.environments)
            and name not in self.excludeEnvironments
        )


class Condition(GateSettings):
    """`entities` is a count (`2`) or a share of the pool (`"50%"`); `soak` is 0s..13d."""

    entities: int | str
    soak: Duration = timedelta(0)

    @field_validator("entities")
    @classmethod
    def _entities(cls, value: int | str) -> int | str:
        if isinstance(value, int):
            if value < 0:
                raise ValueError("entities must be a count >= 0 or a percentage like '50%'")
            return value
        text = value.strip()
        number = text[:-1].strip() if text.endswith("%") else ""
        try:
            share = float(number)
        except ValueError:
            raise ValueError(
                f"entities '{value}' is neither a count nor a percentage like '50%'"
            ) from None
        if not 0 <= share <= 100:
            raise ValueError(f"entities '{value}': a percentage is within 0%..100%")
        return text

    @field_validator("soak")
    @classmethod
    def _soak(cls, value: timedelta) -> timedelta:
        return check_limit(value, MAX_SOAK, "soak")

    def needed(self, pool: int) -> int:
        """How many entities the condition asks for. A share rounds up and is at least one
        entity: 1% of 3 still needs someone's evidence, and an empty pool gives none."""
        if isinstance(self.entities, int):
            return self.entities
        share = float(self.entities[:-1])
        return max(1 if share > 0 else 0, math.ceil(share * pool / 100 - 1e-9))

    def text(self) -> str:
        return f"{self.entities} entities for {format_duration(self.soak)}"


class CanarySettings(GateSettings):
    entities: EntityFilters = Field(default_factory=EntityFilters)
    promoteWhenHealthy: Condition | None = None
    recallWhenUnhealthy: Condition | None = None
    minEntities: int | None = Field(None, ge=0)
    releaseLabel: LabelFilter | None = None


class CanaryGate:
    kind: ClassVar[str] = "canary"
    Settings: ClassVar[type[GateSettings]] = CanarySettings

    def evaluate(self, settings: CanarySettings, ctx: GateContext) -> GateResult:
        places = _places(settings.entities, ctx)
        pool = [h for env in places for h in _named(env, ctx.entity_health(env))]
        where = ", ".join(places) or "no environment"
        rules = ctx.health_rules
        reasons: list[str] = []
        changes: list[datetime] = []

        recall = settings.recallWhenUnhealthy
        if recall is not None:
            need = recall.needed(len(pool))
            bad = [h for h in pool if h.soak >= recall.soak and h.unhealthy_verdict]
            if need > 0 and len(bad) >= need:
                names = ", ".join(h.entity for h in bad)
                return Recall(
                    f"{len(bad)} of {len(pool)} entities in {where} unhealthy for "
                    f"{format_duration(recall.soak)} or more ({names}; over "
                    f"{rules.unhealthy_threshold:.0%} of their soak); recall at {need}"
                )
            if need > 0:
                changes += _when(pool, recall.soak, rules, ctx.now, unhealthy=True)

        if settings.minEntities is not None and len(pool) <= settings.minEntities:
            reasons.append(
                f"{len(pool)} entities in {where}; need more than {settings.minEntities}"
            )
        label = settings.releaseLabel
        if label is not None and not label.matches(ctx.release.labels):
            wanted = f" with one of {', '.join(label.values)}" if label.values else ""
            reasons.append(f"release label {label.key}{wanted} not set")
        promote = settings.promoteWhenHealthy
        if promote is not None:
            need = promote.needed(len(pool))
            good = [h for h in pool if h.soak >= promote.soak and h.satisfies_healthy]
            if len(good) < need:
                reasons.append(
                    f"{len(good)} of {len(pool)} entities in {where} healthy for "
                    f"{format_duration(promote.soak)}; need {need} for "
                    f"{format_duration(promote.soak)} at {rules.healthy_threshold:.0%} healthy"
                )
                changes += _when(pool, promote.soak, rules, ctx.now, unhealthy=False)
        if reasons:
            return Wait("; ".join(reasons), min(changes) if changes else None)
        # Only the recall condition's times remain in `changes`: it can still turn.
        return Pass(
            f"canary in {where}: {len(pool)} entities, conditions met",
            min(changes) if changes else None,
        )


def _places(filters: EntityFilters, ctx: GateContext) -> list[str]:
    return filters.choose(ctx.environments) if filters.given() else ctx.default_places()


def _named(env: str, health: dict[str, EntityHealth]) -> list[EntityHealth]:
    # Entity names are unique within an environment; the pool spans environments.
    return [replace(h, entity=f"{env}/{name}") for name, h in sorted(health.items())]


def _when(
    pool: list[EntityHealth],
    soak: timedelta,
    rules: HealthRules,
    now: datetime,
    *,
    unhealthy: bool,
) -> list[datetime]:
    """Times when an entity not yet meeting the condition would meet it if nothing new is
    reported: the gate's answer can change then, so the engine looks again."""
    times = []
    for h in pool:
        met = h.unhealthy_verdict if unhealthy else h.satisfies_healthy
        if h.first_seen is None or (met and h.soak >= soak):
            continue
        part = h.unhealthy if unhealthy else h.healthy
        grows = h.current == ("unhealthy" if unhealthy else "healthy")
        threshold = rules.unhealthy_threshold if unhealthy else rules.healthy_threshold
        x = _reach(part, h.soak, grows, threshold_fraction(threshold), unhealthy, soak)
        if x is not None:
            times.append(rules.weekends.after(now, x))
    return times


def _reach(
    part: timedelta,
    whole: timedelta,
    grows: bool,
    threshold: Fraction,
    strict: bool,
    soak: timedelta,
) -> timedelta | None:
    """The least weekday time x from now after which the soak is at least `soak` and
    part/whole meets the threshold, `part` growing with time when `grows`; None if never.

    The ratio (p + x) / (w + x) only rises with x and p / (w + x) only falls, so the
    answer is a bound, not a search."""
    p, w = part // _US, whole // _US
    lo = max(0, soak // _US - w, 1 if w == 0 else 0)

    def meets(x: int) -> bool:
        ratio = Fraction(p + (x if grows else 0), w + x)
        return ratio > threshold if strict else ratio >= threshold

    if not grows:
        return timedelta(microseconds=lo) if meets(lo) else None
    if threshold >= 1:
        return timedelta(microseconds=lo) if not strict and p >= w else None
    # p + x >= t (w + x)  <=>  x >= (t w - p) / (1 - t)
    bound = (threshold * w - p) / (1 - threshold)
    x = max(lo, math.floor(bound) + 1 if strict else math.ceil(bound))
    return timedelta(microseconds=x)
