"""`approval`: people say yes before a promotion starts (seed 004's approval gates).

Rules such as "1 from group release-managers and 1 from group security"; approvals may
expire; in production environments, by default, whoever created, triggered or labelled
the release cannot approve it (separation of duties). A rejection does not pass through
here: `conveyor reject` ends the promotion at once."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, ClassVar

from pydantic import Field, PlainSerializer, WithJsonSchema, field_validator, model_validator

from conveyor.gates.base import GateContext, GateSettings
from conveyor.model.approval import Rule, acting, tally
from conveyor.model.duration import format_duration, parse_duration
from conveyor.model.gate import GateResult, Pass, Wait


class RuleSettings(GateSettings):
    count: int = Field(default=1, ge=1, le=20)
    group: str | None = Field(default=None, min_length=1)
    users: list[str] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_source(self) -> RuleSettings:
        if (self.group is None) == (self.users is None):
            raise ValueError("a rule names either a group or a list of users")
        if self.users is not None and self.count > len(self.users):
            raise ValueError(f"count {self.count} is more than the {len(self.users)} users listed")
        return self

    def rule(self) -> Rule:
        return Rule(self.count, self.group, tuple(self.users or ()))


class ApprovalSettings(GateSettings):
    require: list[RuleSettings] = Field(min_length=1)
    expiresAfter: Annotated[
        timedelta | None,
        PlainSerializer(lambda d: format_duration(d) if d else None, return_type=str | None),
        WithJsonSchema(
            {"type": ["string", "null"], "pattern": r"^(\d+(w|d|h|m|s))+$", "examples": ["24h"]}
        ),
    ] = None
    # Default: on in production environments, off elsewhere.
    separationOfDuties: bool | None = None

    @field_validator("expiresAfter", mode="before")
    @classmethod
    def _duration(cls, value: object) -> timedelta | None:
        if value is None:
            return None
        delta = parse_duration(value) if isinstance(value, str) else value
        if not isinstance(delta, timedelta) or delta <= timedelta(0):
            raise ValueError("expiresAfter is a duration above 0, e.g. 24h")
        return delta

    def rules(self) -> list[Rule]:
        return [r.rule() for r in self.require]

    def separated(self, production: bool) -> bool:
        return production if self.separationOfDuties is None else self.separationOfDuties


class ApprovalGate:
    kind: ClassVar[str] = "approval"
    Settings: ClassVar[type[GateSettings]] = ApprovalSettings

    def evaluate(self, settings: ApprovalSettings, ctx: GateContext) -> GateResult:
        excluded: frozenset[str] = frozenset()
        if settings.separated(ctx.production):
            excluded = frozenset(acting(a) for a in ctx.release_actors())
        result = tally(settings.rules(), ctx.decisions(), ctx.now, settings.expiresAfter, excluded)
        if result.met:
            # An expiring approval must still hold when the promotion starts: look again then.
            return Pass(f"approved: {result.summary}", result.expires_at)
        return Wait(f"approval: {result.summary}")
