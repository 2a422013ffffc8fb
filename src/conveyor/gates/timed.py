"""`timed`: the release must have spent a duration (0s..31d) in an environment (seed 001)."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

from pydantic import Field, field_validator

from conveyor.gates.base import GateContext, GateSettings
from conveyor.model.definitions import Duration
from conveyor.model.duration import check_limit, format_duration
from conveyor.model.gate import GateResult, Pass, Wait

MAX_SOAK = timedelta(days=31)


class TimedSettings(GateSettings):
    """`in` names the environment to soak in; left out, it is the upstream environments
    for an entry gate and this environment (after deployment) for a verification gate."""

    duration: Duration
    in_: str | None = Field(None, alias="in")

    @field_validator("duration")
    @classmethod
    def _limit(cls, value: timedelta) -> timedelta:
        return check_limit(value, MAX_SOAK, "duration")


class TimedGate:
    kind: ClassVar[str] = "timed"
    Settings: ClassVar[type[GateSettings]] = TimedSettings

    def evaluate(self, settings: TimedSettings, ctx: GateContext) -> GateResult:
        soak = format_duration(settings.duration)
        places = [settings.in_] if settings.in_ else ctx.default_places()
        where = ", ".join(places)
        if ctx.phase == "entry" and not settings.in_ and not ctx.upstream:
            since = ctx.release_created_at  # the root: soak counts from the release's creation
        else:
            times = [ctx.deployed_at(env) for env in places]
            if any(t is None for t in times):
                return Wait(f"soak {soak} in {where}: not deployed there yet")
            since = max(t for t in times if t is not None)
        until = since + settings.duration
        if ctx.now >= until:
            return Pass(f"soaked {soak} in {where}")
        return Wait(f"soak {soak} in {where}", until)
