"""What every action is: a name, a settings model, and an idempotent run function."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from conveyor.errors import TerminalError
from conveyor.model.template import TemplateError, render_tree

OUTPUT_LIMIT = 32 * 1024


class ActionSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


@dataclass
class ActionContext:
    """What an action gets: its raw `with:`, the template context, limits, a cancel flag."""

    raw: Mapping[str, Any]
    template: Mapping[str, Any]
    workdir: Path
    timeout_s: float
    cancel: threading.Event = field(default_factory=threading.Event)
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ActionResult:
    ok: bool
    output: str = ""
    summary: str = ""
    retryable: bool = True


class Action(Protocol):
    name: ClassVar[str]
    Settings: ClassVar[type[ActionSettings]]

    def run(self, ctx: ActionContext) -> ActionResult: ...


S = TypeVar("S", bound=ActionSettings)


def rendered_settings(model: type[S], ctx: ActionContext) -> S:
    """Render every `${{ }}` in `with:` and validate the result; bad input is terminal."""
    try:
        return model.model_validate(render_tree(dict(ctx.raw), ctx.template))
    except TemplateError as exc:
        raise TerminalError(f"template: {exc}") from None
    except ValidationError as exc:
        raise TerminalError(f"settings: {exc}") from None


def truncate(text: str, limit: int = OUTPUT_LIMIT) -> str:
    """Keep the head and the tail: the start says what ran, the end says why it failed."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n... [{len(text) - limit} characters cut] ...\n{text[-half:]}"
