"""What every gate is: a name, a settings model, and an evaluate function."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from conveyor.model.gate import GateResult
from conveyor.model.release import ReleaseInfo


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


class Gate(Protocol):
    kind: ClassVar[str]
    Settings: ClassVar[type[GateSettings]]

    def evaluate(self, settings: Any, ctx: GateContext) -> GateResult: ...
