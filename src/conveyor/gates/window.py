"""`window`: promotions start only while an allow window is open and no deny window is
(seed 004's sync windows). The Wait names the next opening, and the engine looks again
then; see model/window.py for the semantics."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from conveyor.gates.base import GateContext, GateSettings
from conveyor.model.gate import GateResult, Pass, Wait
from conveyor.model.window import WindowDef, decide, overridable


class WindowSettings(GateSettings):
    windows: list[WindowDef] = Field(min_length=1)


class WindowGate:
    kind: ClassVar[str] = "window"
    Settings: ClassVar[type[GateSettings]] = WindowSettings

    def evaluate(self, settings: WindowSettings, ctx: GateContext) -> GateResult:
        decision = decide(settings.windows, ctx.now)
        if decision.open:
            # A verification gate passed now may close later: nothing to look at again.
            return Pass(decision.reason)
        override = next((d for d in ctx.decisions() if d.verdict == "override"), None)
        if override is not None and overridable(settings.windows, decision):
            return Pass(f"{decision.reason}; overridden by {override.user}: {override.comment}")
        opening = decision.next_opening
        when = f"; opens {opening:%Y-%m-%d %H:%M} UTC" if opening else "; no opening within a year"
        return Wait(decision.reason + when, opening)
