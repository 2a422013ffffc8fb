"""What every action is: a name, a settings model, and an idempotent run function."""

from __future__ import annotations

import base64
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar
from urllib.parse import quote, urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError

from conveyor.clock import Clock, Deadline, SystemClock
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
    workdir: Path  # where commands run
    timeout_s: float
    data_dir: Path = Path(".conveyor")  # caches an action may keep (git working copies)
    now: datetime = datetime(1970, 1, 1, tzinfo=UTC)  # the engine's clock at this attempt
    started_at: datetime = datetime(1970, 1, 1, tzinfo=UTC)  # first poll of this attempt
    run_key: str = ""  # names this task run uniquely and stably (for idempotency)
    promotion_id: int | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    env: Mapping[str, str] = field(default_factory=dict)
    # A batch group: the `batch: true` tasks of one step of one promotion, started together,
    # share a key (unique to that start) and know how many they are. The git actions commit
    # a group whole: the first to get the branch waits for the rest (up to its timeout).
    batch_key: str = ""  # "" = no group: batch with whoever is waiting, as they come
    batch_size: int = 1  # how many tasks carry this batch_key (1 = no group)
    clock: Clock = field(default_factory=SystemClock)  # the engine's: deadlines are on it

    def deadline(self) -> Deadline:
        """When this attempt's timeout ends, from now."""
        return Deadline.after(self.clock, self.timeout_s)


@dataclass(frozen=True)
class ActionResult:
    """`again_after` (with ok False) means "not done yet, run me again after this long":
    an action waiting on something outside returns instead of holding a thread."""

    ok: bool
    output: str = ""
    summary: str = ""
    retryable: bool = True
    again_after: timedelta | None = None


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


def refuse_password(url: str, instead: str) -> str:
    """A URL with a password or token in it would be stored in the definition, the audit
    trail and (for git) the working copy's .git/config: refused, without repeating it."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if password:
        masked = parts._replace(netloc=f"{parts.username}:***@{parts.hostname}").geturl()
        raise ValueError(f"the URL {masked} has a password or token in it: {instead}")
    return url


# The engine's environment variables that hold secrets, named by the operator (comma-
# separated): http headers may read them (`${env:NAME}`), and their values are scrubbed
# from every task's stored output.
SECRET_ENV = "CONVEYOR_SECRET_ENV"


def declared_secret_names(env: Mapping[str, str]) -> set[str]:
    return {n.strip() for n in env.get(SECRET_ENV, "").split(",") if n.strip()}


def declared_secrets(env: Mapping[str, str]) -> list[str]:
    return [env[n] for n in sorted(declared_secret_names(env)) if env.get(n)]


def scrub(text: str, secrets: list[str]) -> str:
    """`text` with every secret replaced by `***`, in the forms it travels in too: as is,
    base64 (HTTP basic authentication, Kubernetes secrets) and URL-encoded."""
    forms: set[str] = set()
    for secret in secrets:
        if len(secret) < 4:  # too short to tell from ordinary text; never a real credential
            continue
        raw = secret.encode()
        forms |= {
            secret,
            base64.b64encode(raw).decode().rstrip("="),
            base64.urlsafe_b64encode(raw).decode().rstrip("="),
            quote(secret, safe=""),
        }
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, "***")
    return text
