"""`releaseLabel`: the release carries a label, optionally with one of some values (seed 001)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from conveyor.gates.base import GateContext, GateSettings
from conveyor.model.gate import GateResult, Pass, Wait


class ReleaseLabelSettings(GateSettings):
    key: str = Field(min_length=1)
    values: list[str] | None = None


class ReleaseLabelGate:
    kind: ClassVar[str] = "releaseLabel"
    Settings: ClassVar[type[GateSettings]] = ReleaseLabelSettings

    def evaluate(self, settings: ReleaseLabelSettings, ctx: GateContext) -> GateResult:
        value = ctx.release.labels.get(settings.key)
        wanted = f" with one of {', '.join(settings.values)}" if settings.values else ""
        # Labels can still change, so a missing or wrong label waits rather than fails.
        if value is None:
            return Wait(f"label {settings.key}{wanted} not set")
        if settings.values and value not in settings.values:
            return Wait(f"label {settings.key}={value}, needs one of {', '.join(settings.values)}")
        return Pass(f"label {settings.key}={value}")
