"""The YAML resource kinds as pydantic models (validated shape; no I/O).

Specs are stored as the plain dicts users wrote and parsed back through these models,
so a stored definition always means what `conveyor apply` checked.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from conveyor.model.duration import check_limit, format_duration, parse_duration
from conveyor.model.imageref import repository_problem
from conveyor.model.window import WindowDef

API_VERSION = "conveyor.dev/v1"
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9._]*[a-z0-9])?$"
MAX_TASK_TIMEOUT = timedelta(days=1)

Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=63)]
Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^(\d+(w|d|h|m|s))+$", "examples": ["2h"]}),
]


class Strict(BaseModel):
    """Every definition model refuses fields it does not know."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Metadata(Strict):
    name: Name
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class Document(Strict):
    apiVersion: Literal["conveyor.dev/v1"]
    kind: str
    metadata: Metadata
    spec: dict[str, Any] = Field(default_factory=dict)
    # What `conveyor get -o yaml` adds about the stored revision (revision, appliedBy ...):
    # accepted and dropped on apply, so a document read back applies unchanged.
    status: dict[str, Any] | None = None

    @field_validator("spec", mode="before")
    @classmethod
    def _empty_spec(cls, value: Any) -> Any:
        return {} if value is None else value  # `spec:` with nothing under it


# --- Product -------------------------------------------------------------------------


class ArtifactDef(Strict):
    name: Name
    type: Literal["image", "git", "chart", "file"] = "image"
    repository: str = ""

    @model_validator(mode="after")
    def _image_repository(self) -> ArtifactDef:
        why = (
            repository_problem(self.repository)
            if self.type == "image" and self.repository
            else None
        )
        if why:
            raise ValueError(f"image repository '{self.repository}' {why}")
        return self


Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: tuple[Weekday, ...] = get_args(Weekday)  # Monday first, as `datetime.weekday()`


def _saturday_sunday() -> list[Weekday]:
    return ["saturday", "sunday"]


class RolloutCriteria(Strict):
    """Seed 001: the share of time entities must be healthy / may be unhealthy. Time on
    `weekendDays` (in the product's time zone) counts in neither, nor in the soak."""

    healthyThreshold: float = Field(0.95, ge=0.0, le=1.0)
    unhealthyThreshold: float = Field(0.05, ge=0.0, le=1.0)
    weekendDays: list[Weekday] = Field(default_factory=_saturday_sunday)

    def weekend_numbers(self) -> frozenset[int]:
        """Monday=0 .. Sunday=6, as `datetime.weekday()` counts."""
        return frozenset(WEEKDAYS.index(d) for d in self.weekendDays)


class ProductSpec(Strict):
    description: str = ""
    artifacts: list[ArtifactDef] = Field(default_factory=list)
    rolloutCriteria: RolloutCriteria = Field(default_factory=RolloutCriteria)
    timeZone: str = "UTC"
    # When its releases may be promoted anywhere (seed 001's maintenance window: an allow
    # window); added to every promotion's entry gates as a `window` gate at trigger.
    windows: list[WindowDef] = Field(default_factory=list)

    @field_validator("timeZone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone '{value}': use an IANA name such as UTC or Europe/Paris"
            ) from None
        return value

    @model_validator(mode="after")
    def _unique_artifacts(self) -> ProductSpec:
        _unique([a.name for a in self.artifacts], "artifact")
        return self


# --- Environment ---------------------------------------------------------------------


HealthStateName = Literal[
    "HEALTHY", "DEFERRING", "WARNING", "REPAIRING", "SUSPENDED", "TERMINAL", "ERROR"
]
EntityName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$")]
MAX_PROBE_INTERVAL = timedelta(days=1)


class EntityDef(Strict):
    """One running instance of the product in the environment (a cluster, a service)."""

    name: EntityName
    description: str = ""


class ProbeDef(Strict):
    """Pull health over HTTP: GET `url` every `interval`; the answer becomes a report of
    node `node` of `entity`. A failed connection or timeout is a not-live report."""

    entity: EntityName
    node: EntityName = "probe"
    url: str = Field(pattern=r"^https?://")
    interval: Duration = timedelta(seconds=30)
    timeout: Duration = timedelta(seconds=5)
    # Status code -> state. Codes not listed: 2xx is HEALTHY, anything else ERROR.
    statusStates: dict[int, HealthStateName] = Field(default_factory=dict)
    # A dotted path into a JSON answer whose value names the state (mapped by fieldStates,
    # else read as a state name); it wins over the status code when present.
    field: str | None = None
    fieldStates: dict[str, HealthStateName] = Field(default_factory=dict)
    # A dotted path to the version the node runs; left out, the version deployed there.
    versionField: str | None = None

    @field_validator("interval", "timeout")
    @classmethod
    def _limits(cls, value: timedelta, info: ValidationInfo) -> timedelta:
        if value < timedelta(seconds=1):
            raise ValueError("must be at least 1s")
        return check_limit(value, MAX_PROBE_INTERVAL, str(info.field_name))


class EnvironmentHealth(Strict):
    # Left out: entities register on their first report unless `entities` lists them.
    allowRegistration: bool | None = None
    probes: list[ProbeDef] = Field(default_factory=list)
    # How far ahead of Conveyor's clock a report may be dated (a reporter's clock runs
    # fast); later ones are refused, so that no report can speak for the future.
    maxClockSkew: Duration = timedelta(minutes=5)

    @field_validator("maxClockSkew")
    @classmethod
    def _skew(cls, value: timedelta) -> timedelta:
        check_limit(value, timedelta(days=1), "maxClockSkew")
        return value


class EnvironmentSpec(Strict):
    type: Literal["non-production", "production"] = "non-production"
    description: str = ""
    settings: dict[str, str] = Field(default_factory=dict)
    entities: list[EntityDef] = Field(default_factory=list)
    health: EnvironmentHealth = Field(default_factory=EnvironmentHealth)
    # When promotions to it may start; added to its promotions' entry gates at trigger.
    windows: list[WindowDef] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_entities(self) -> EnvironmentSpec:
        _unique([e.name for e in self.entities], "entity")
        if not self.allows_registration():
            for probe in self.health.probes:
                if probe.entity not in self.declared():
                    raise ValueError(
                        f"probe entity '{probe.entity}' is not in entities: list it there, "
                        "or set health.allowRegistration: true"
                    )
        return self

    def declared(self) -> frozenset[str]:
        return frozenset(e.name for e in self.entities)

    def allows_registration(self) -> bool:
        allowed = self.health.allowRegistration
        return not self.entities if allowed is None else allowed


# --- Workflows and policies ----------------------------------------------------------


class TaskDef(Strict):
    name: Name
    uses: str
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    halt_on_error: bool = True
    wait_for_finish: bool = True
    retries: int = Field(0, ge=0, le=20)
    backoff: Duration = timedelta(seconds=1)
    timeout: Duration = timedelta(minutes=10)

    @field_validator("timeout")
    @classmethod
    def _timeout_limit(cls, value: timedelta) -> timedelta:
        return check_limit(value, MAX_TASK_TIMEOUT, "timeout")


class StepDef(Strict):
    name: Name
    tasks: list[TaskDef] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_tasks(self) -> StepDef:
        _unique([t.name for t in self.tasks], "task")
        return self


class WorkflowDef(Strict):
    steps: list[StepDef] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_steps(self) -> WorkflowDef:
        _unique([s.name for s in self.steps], "step")
        return self


class Hooks(Strict):
    onStart: list[TaskDef] = Field(default_factory=list)
    onSuccess: list[TaskDef] = Field(default_factory=list)
    onFail: list[TaskDef] = Field(default_factory=list)


# A gate is written `{kind: {settings}}`; its settings are checked by the gate's own model.
GateEntry = dict[str, Any]


class PolicyBody(Strict):
    """What a node requires. A field left out (None) is inherited when policies merge."""

    gates: list[GateEntry] | None = None
    workflow: WorkflowDef | None = None
    verify: list[dict[str, Any]] | None = None
    hooks: Hooks | None = None


POLICY_FIELDS = ("gates", "workflow", "verify", "hooks")


class EnvironmentSelector(Strict):
    names: list[str] | None = None
    types: list[Literal["non-production", "production"]] | None = None
    labels: dict[str, str] | None = None


class PolicySelector(Strict):
    products: list[str] | None = None
    environments: EnvironmentSelector | None = None


class PolicySpec(PolicyBody):
    priority: int = 0
    selector: PolicySelector = Field(default_factory=PolicySelector)


# --- Flow ----------------------------------------------------------------------------


class ChannelRef(Strict):
    labels: dict[str, str] = Field(min_length=1)


class FlowNode(Strict):
    """One node: an environment (by `name`) or a channel (a label selector, named by `name`)."""

    name: Name
    channel: ChannelRef | None = None
    dependsOn: list[str] = Field(default_factory=list)
    policy: PolicyBody | None = None


class Concurrency(Strict):
    mode: Literal["queue", "supersede"] = "queue"
    limit: int = Field(50, ge=1, le=10_000)


class FlowSpec(Strict):
    version: str = Field(pattern=r"^\d+(\.\d+){0,2}$")
    product: Name
    triggerEnvironment: Name
    description: str = ""
    environments: list[FlowNode] = Field(default_factory=list)
    concurrency: Concurrency = Field(default_factory=Concurrency)
    autoTrigger: bool = False
    hooks: Hooks = Field(default_factory=Hooks)


# --- NotificationSink ---------------------------------------------------------------

# What a sink may be told about; `audit.verify-failed` comes from `conveyor audit verify`.
NotificationEvent = Literal[
    "promotion.failed",
    "promotion.succeeded",
    "approval.requested",
    "release.recalled",
    "rollback",
    "window.override",
    "audit.verify-failed",
]
NOTIFICATION_EVENTS: tuple[NotificationEvent, ...] = get_args(NotificationEvent)
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=100)]


class WebhookDef(Strict):
    url: str = Field(pattern=r"^https?://", max_length=2000)
    # The HMAC-SHA256 key, read from this variable (declared in CONVEYOR_SECRET_ENV).
    secretEnv: EnvName | None = None
    timeout: Duration = timedelta(seconds=10)

    @field_validator("url")
    @classmethod
    def _no_credentials(cls, value: str) -> str:
        if "@" in value.split("://", 1)[1].split("/", 1)[0]:
            raise ValueError(
                "a webhook URL must not hold credentials: sign deliveries with secretEnv, "
                "which names a variable the engine reads"
            )
        return value


class AppriseDef(Strict):
    # Apprise URLs carry their tokens: they are read from this variable, never stored.
    urlEnv: EnvName


class NotificationSpec(Strict):
    events: list[NotificationEvent] = Field(
        default_factory=lambda: list(NOTIFICATION_EVENTS), min_length=1
    )
    products: list[Name] = Field(default_factory=list)  # empty: every product
    environments: list[Name] = Field(default_factory=list)  # empty: every environment
    webhook: WebhookDef | None = None
    apprise: AppriseDef | None = None

    @model_validator(mode="after")
    def _one_target(self) -> NotificationSpec:
        if (self.webhook is None) == (self.apprise is None):
            raise ValueError("give exactly one of webhook or apprise")
        return self


KINDS: dict[str, type[Strict]] = {  # in the order of KIND_NAMES
    "Product": ProductSpec,
    "Environment": EnvironmentSpec,
    "PromotionFlow": FlowSpec,
    "PromotionPolicy": PolicySpec,
    "NotificationSink": NotificationSpec,
}


def _unique(names: list[str], what: str) -> None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise ValueError(f"{what} '{n}' appears twice; {what} names must be unique")
        seen.add(n)
