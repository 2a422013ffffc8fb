"""`http`: one request, judged by its status (`expectStatus`, default 2xx) and by
`conditions` on its JSON answer (`{path: status.sync.status, equals: Synced}`, `in`, `exists`).

Credentials: `Authorization: "Bearer ${env:ARGOCD_TOKEN}"` puts the engine's environment
variable in a header. Only header values may name one, as written in the policy: the pieces
around it are templated apart, so a templated value (a label) can never name a variable.
Those values are scrubbed from output, errors and summaries.

`until: {conditions, interval: 10s, timeout: 10m}` polls: while the conditions do not hold
the action asks to be run again after `interval` (no thread waits); `timeout` after the
first poll it fails, naming the condition and its last value. Transport errors, 5xx and 429
may be retried (the task's `retries`); other unexpected statuses are terminal.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal

import httpx
from pydantic import BeforeValidator, Field, field_validator, model_validator

from conveyor.actions.base import (
    SECRET_ENV,
    ActionContext,
    ActionResult,
    ActionSettings,
    declared_secret_names,
    refuse_password,
    rendered_settings,
    scrub,
    truncate,
)
from conveyor.errors import ActionError, TerminalError, TransientError
from conveyor.model.definitions import Duration
from conveyor.model.duration import check_limit, format_duration
from conveyor.model.jsonpath import MISSING, PATH, find
from conveyor.model.template import TemplateError, render, strings_in

_CREDENTIAL_PARAM = re.compile(
    r"(?i)^(.*token|.*key|.*secret|password|passwd|pwd|auth.*|code|sig|signature|x-amz-.*)$"
)
ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
Method = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_HOUR = timedelta(hours=1)


def _between(value: timedelta, what: str, maximum: timedelta) -> timedelta:
    if value < timedelta(seconds=1):
        raise ValueError(f"{what} is at least 1s")
    return check_limit(value, maximum, what)


class Condition(ActionSettings):
    """`path` (dots and `[N]`) and one test: `equals`, `in` or `exists`."""

    path: str
    equals: Any = None
    in_: list[Any] | None = Field(None, alias="in")
    exists: bool | None = None

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if "${{" not in value and not PATH.match(value):
            raise ValueError(f"'{value}' is not a path: write e.g. status.sync.status or items[0]")
        return value

    @model_validator(mode="after")
    def _one_test(self) -> Condition:
        given = [k for k in ("equals", "in_", "exists") if k in self.model_fields_set]
        if len(given) != 1 or (given[0] != "equals" and getattr(self, given[0]) is None):
            raise ValueError("a condition has `path` and one of `equals`, `in` or `exists`")
        return self

    def describe(self) -> str:
        if self.in_ is not None:
            return f"{self.path} in {_show(self.in_)}"
        if self.exists is not None:
            return f"{self.path} {'exists' if self.exists else 'does not exist'}"
        return f"{self.path} equals {_show(self.equals)}"

    def check(self, document: Any) -> tuple[bool, str]:
        """Whether it holds, and the value seen (for a message)."""
        value = find(document, self.path)
        seen = "(missing)" if value is MISSING else _show(value)
        if self.exists is not None:
            return (value is not MISSING) == self.exists, seen
        if value is MISSING:
            return False, seen
        if self.in_ is not None:
            return any(_same(value, v) for v in self.in_), seen
        return _same(value, self.equals), seen


class Until(ActionSettings):
    conditions: list[Condition] = Field(min_length=1)
    interval: Duration = timedelta(seconds=10)
    timeout: Duration = timedelta(minutes=10)

    _interval = field_validator("interval")(lambda v: _between(v, "interval", _HOUR))
    _timeout = field_validator("timeout")(lambda v: _between(v, "timeout", timedelta(days=1)))


class HttpSettings(ActionSettings):
    method: Annotated[Method, BeforeValidator(lambda v: str(v).upper())] = "GET"
    url: str = Field(min_length=1)
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    json_: Any = Field(None, alias="json")
    timeout: Duration = Field(timedelta(seconds=30), description="for one request")
    expectStatus: list[int] = Field(default_factory=list, description="default: any 2xx")
    conditions: list[Condition] = Field(default_factory=list, description="must hold at once")
    until: Until | None = Field(None, description="poll until these hold")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith("${{") and not re.match(r"(?i)^https?://", value):
            raise ValueError("only http:// and https:// URLs")
        return refuse_password(
            value, 'remove it, and send it in a header: Authorization: "Bearer ${env:NAME}"'
        )

    _request_timeout = field_validator("timeout")(lambda v: _between(v, "timeout", _HOUR))

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _TOKEN.match(name):
                raise ValueError(f"'{name}' is not a header name")
            if "${env:" in ENV_REF.sub("", text):
                raise ValueError(f"header {name}: write a variable as ${{env:NAME}}")
        return value

    @model_validator(mode="after")
    def _shape(self) -> HttpSettings:
        if self.body is not None and self.json_ is not None:
            raise ValueError("give `body` (text) or `json` (an object), not both")
        for where, text in strings_in({"url": self.url, "body": self.body, "json": self.json_}):
            if "${env:" in text:
                raise ValueError(f"{where[0]}: only header values may read the environment")
        return self


class HttpAction:
    name: ClassVar[str] = "http"
    Settings: ClassVar[type[ActionSettings]] = HttpSettings

    def run(self, ctx: ActionContext) -> ActionResult:
        secrets: list[str] = []
        try:
            result = _request(ctx, secrets)
        except ActionError as exc:
            raise type(exc)(scrub(str(exc), secrets)) from None
        except Exception as exc:  # whatever it says may hold a secret
            raise TerminalError(scrub(f"{type(exc).__name__}: {exc}", secrets)) from None
        return replace(
            result, output=scrub(result.output, secrets), summary=scrub(result.summary, secrets)
        )


def _request(ctx: ActionContext, secrets: list[str]) -> ActionResult:
    written = HttpSettings.model_validate(ctx.raw)  # headers as written; checked at apply
    settings = rendered_settings(HttpSettings, replace(ctx, raw={**ctx.raw, "headers": {}}))
    headers = _headers(written.headers, ctx, secrets)
    try:
        url = httpx.URL(settings.url)
    except httpx.InvalidURL as exc:
        raise TerminalError(f"url: {exc}") from None
    if url.password:
        secrets.append(url.password)
    # A signed link or an API key in the query string is a credential too: kept out of the
    # stored output, summary and errors like a header's.
    secrets += [v for k, v in url.params.multi_items() if v and _CREDENTIAL_PARAM.match(k)]
    if url.scheme not in ("http", "https") or not url.host:
        raise TerminalError(f"url {url}: only http:// and https:// URLs with a host")
    if ctx.cancel.is_set():
        return ActionResult(False, "", "cancelled", retryable=False)
    line = f"{settings.method} {url}"
    try:
        with httpx.Client(timeout=min(settings.timeout.total_seconds(), ctx.timeout_s)) as client:
            response = client.request(
                settings.method, url, headers=headers, content=settings.body, json=settings.json_
            )
    except httpx.HTTPError as exc:  # connection refused, reset, timed out
        raise TransientError(f"{line}: {type(exc).__name__}: {exc}") from None
    line = f"{line} -> {response.status_code}"
    output = truncate(f"{line}\n{response.text}")
    code = response.status_code
    if code not in (settings.expectStatus or range(200, 300)):
        want = ", ".join(map(str, settings.expectStatus)) or "2xx"
        snippet = " ".join(response.text[:200].split())
        text = f"{line}, expected {want}" + (f": {snippet}" if snippet else "")
        return ActionResult(False, output, text, retryable=code >= 500 or code == 429)
    until = settings.until
    if not settings.conditions and until is None:
        return ActionResult(True, output, line)
    try:
        document = response.json()
    except ValueError:
        return ActionResult(False, output, f"{line}: the answer is not JSON", retryable=False)
    if failing := _failing(settings.conditions, document):
        text = f"{line}: condition {failing[0]} does not hold (value: {failing[1]})"
        return ActionResult(False, output, text, retryable=False)
    if until is None or not (failing := _failing(until.conditions, document)):
        return ActionResult(True, output, f"{line}: conditions hold")
    (what, seen), elapsed = failing, ctx.now - ctx.started_at
    if elapsed >= until.timeout:
        text = f"condition {what} did not hold (last value: {seen})"
        text = f"timed out after {format_duration(until.timeout)}: {text}"
        return ActionResult(False, output, text, retryable=False)
    wait = min(until.interval, until.timeout - elapsed)
    return ActionResult(False, output, f"waiting for {what} (now {seen})", again_after=wait)


def _headers(written: Mapping[str, str], ctx: ActionContext, secrets: list[str]) -> dict[str, str]:
    """Template the literal pieces; put environment values between them, unrendered."""
    env = {**os.environ, **ctx.env}
    # Only the variables the operator declared: a policy author must not read the engine's
    # database URL or another team's token by naming it.
    declared = declared_secret_names(env)
    out: dict[str, str] = {}
    for name, text in written.items():
        pieces = ENV_REF.split(text)  # literal, NAME, literal, NAME, ..., literal
        values: list[str] = []
        for i, piece in enumerate(pieces):
            if i % 2:
                if piece not in declared:
                    raise TerminalError(
                        f"environment variable {piece} (header {name}) is not declared: the "
                        f"operator lists the variables tasks may read in {SECRET_ENV} (e.g. "
                        f"{SECRET_ENV}={piece}) where the engine starts"
                    )
                secret = env.get(piece)
                if not secret:
                    raise TerminalError(f"environment variable {piece} (header {name}) is not set")
                secrets.append(secret)
                values.append(secret)
                continue
            try:
                values.append(render(piece, ctx.template))
            except TemplateError as exc:
                raise TerminalError(f"header {name}: template: {exc}") from None
        value = "".join(values)
        if "\r" in value or "\n" in value:
            raise TerminalError(f"header {name} holds a line break")
        out[name] = value
    return out


def _failing(conditions: list[Condition], document: Any) -> tuple[str, str] | None:
    """The first condition that does not hold, and the value it saw."""
    for condition in conditions:
        holds, seen = condition.check(document)
        if not holds:
            return condition.describe(), seen
    return None


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON values: `true` is not `1`."""
    return bool(a == b) and isinstance(a, bool) == isinstance(b, bool)


def _show(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 200 else text[:200] + "..."
