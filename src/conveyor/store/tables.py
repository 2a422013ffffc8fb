"""The tables. Timestamps are stored as UTC; JSON columns hold plain documents.

Kept portable: no SQLite-only types or statements, so PostgreSQL runs the same schema.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from conveyor.clock import utc


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as UTC, read back as aware UTC: SQLite would otherwise drop the offset."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: Conveyor stores only timezone-aware times")
        return utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else utc(value)


class Base(DeclarativeBase):
    type_annotation_map = {
        dict[str, Any]: JSON,
        list[Any]: JSON,
        datetime: UTCDateTime(),
    }


class ResourceRow(Base):
    """Every revision of every definition; the newest revision is the current one."""

    __tablename__ = "resources"
    __table_args__ = (UniqueConstraint("kind", "name", "revision"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(63))
    revision: Mapped[int] = mapped_column(Integer)
    document: Mapped[dict[str, Any]]
    deleted: Mapped[bool] = mapped_column(default=False)
    source: Mapped[str] = mapped_column(String(500), default="")
    applied_by: Mapped[str] = mapped_column(String(200))
    applied_at: Mapped[datetime]


class ReleaseRow(Base):
    __tablename__ = "releases"
    __table_args__ = (UniqueConstraint("product", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    product: Mapped[str] = mapped_column(String(63))
    version: Mapped[str] = mapped_column(String(100))
    artifacts: Mapped[dict[str, Any]]
    labels: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(20), index=True)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    flow: Mapped[str | None] = mapped_column(String(63), default=None)
    flow_revision: Mapped[int | None] = mapped_column(default=None)
    # The flow as it was when triggered: editing a flow never changes a running release.
    flow_document: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    triggered_at: Mapped[datetime | None] = mapped_column(default=None)
    triggered_by: Mapped[str | None] = mapped_column(String(200), default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    # Release-level hooks: "" not started, then the stage keys done, "done" at the end.
    hooks_done: Mapped[list[Any]] = mapped_column(JSON, default=list)
    generation: Mapped[int] = mapped_column(default=0)
    message: Mapped[str] = mapped_column(Text, default="")
    # When the engine must look at this release again: NULL when nothing it waits for has
    # a time (it rests until an event marks it). A pass reads only releases due by now.
    next_look_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    # A gate it waits at reads entity health: a health report marks it due.
    watch_health: Mapped[bool] = mapped_column(default=False)


class PromotionRow(Base):
    """One release passing one environment of one node of its flow."""

    __tablename__ = "promotions"
    __table_args__ = (
        UniqueConstraint("release_id", "node", "environment"),
        Index("ix_promotions_env_state", "environment", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"), index=True)
    node: Mapped[str] = mapped_column(String(63))
    environment: Mapped[str] = mapped_column(String(63))
    state: Mapped[str] = mapped_column(String(20))
    state_since: Mapped[datetime]
    # The merged policy at trigger time, with where each field came from. Read only when
    # asked for: the engine parses it once per promotion and keeps the plan.
    policy: Mapped[dict[str, Any]] = mapped_column(JSON, deferred=True)
    cursor: Mapped[int] = mapped_column(default=0)
    generation: Mapped[int] = mapped_column(default=0)
    wait_reason: Mapped[str] = mapped_column(Text, default="")
    wait_until: Mapped[datetime | None] = mapped_column(default=None)
    message: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    deployed_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    fail_hooks_pending: Mapped[bool] = mapped_column(default=False)
    # Put back by `conveyor rollback` or a recall, outside the release's flow.
    rollback: Mapped[bool] = mapped_column(default=False)
    # Consecutive evaluations in which a gate raised or answered garbage.
    plugin_errors: Mapped[int] = mapped_column(default=0)


class TaskRunRow(Base):
    """One task of one stage, for a promotion or (promotion_id NULL) its release's hooks."""

    __tablename__ = "task_runs"
    __table_args__ = (UniqueConstraint("release_id", "scope", "generation", "stage", "task"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"), index=True)
    promotion_id: Mapped[int | None] = mapped_column(ForeignKey("promotions.id"), default=None)
    scope: Mapped[str] = mapped_column(String(80))  # "release" or the promotion's node/env
    generation: Mapped[int] = mapped_column(default=0)
    stage: Mapped[str] = mapped_column(String(120))
    task: Mapped[str] = mapped_column(String(63))
    action: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(20), index=True)
    attempt: Mapped[int] = mapped_column(default=0)
    owner: Mapped[str] = mapped_column(String(80), default="")
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    # What the task printed: read by views (undeferred there), not by every engine pass.
    output: Mapped[str] = mapped_column(Text, default="", deferred=True)
    error: Mapped[str] = mapped_column(Text, default="")
    # Attempts started again because the engine running them died: they use up no retries.
    takeovers: Mapped[int] = mapped_column(default=0)


class EngineLeaseRow(Base):
    """An engine process serving the database, alive while it renews its lease."""

    __tablename__ = "engine_leases"

    owner: Mapped[str] = mapped_column(String(80), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column()
    mode: Mapped[str] = mapped_column(String(20))  # "engine" or "run" (run --until-idle)
    started_at: Mapped[datetime]
    renewed_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class GateResultRow(Base):
    __tablename__ = "gate_results"
    __table_args__ = (UniqueConstraint("promotion_id", "generation", "stage", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    promotion_id: Mapped[int] = mapped_column(ForeignKey("promotions.id"), index=True)
    generation: Mapped[int] = mapped_column(default=0)
    stage: Mapped[str] = mapped_column(String(120))
    position: Mapped[int] = mapped_column()
    kind: Mapped[str] = mapped_column(String(40))
    result: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str] = mapped_column(Text, default="")
    until: Mapped[datetime | None] = mapped_column(default=None)
    evaluated_at: Mapped[datetime]


class AuditRow(Base):
    """Append-only; each event carries the hash of the one before it."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(80))
    subject: Mapped[str] = mapped_column(String(300))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


# A health report's state as stored in `health_reports.state_code` (NULL: liveness only).
# Stored values: extend, never renumber. 3 bits, so the evaluation read can pack it.
HEALTH_STATE_CODES: dict[str, int] = {
    "HEALTHY": 1,
    "DEFERRING": 2,
    "WARNING": 3,
    "REPAIRING": 4,
    "SUSPENDED": 5,
    "TERMINAL": 6,
    "ERROR": 7,
}
HEALTH_STATE_NAMES: dict[int, str] = {code: name for name, code in HEALTH_STATE_CODES.items()}


class HealthNodeRow(Base):
    """A node of an entity in an environment, named once for all its reports."""

    __tablename__ = "health_nodes"
    __table_args__ = (UniqueConstraint("environment", "entity", "node"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    environment: Mapped[str] = mapped_column(String(63))
    entity: Mapped[str] = mapped_column(String(200))
    node: Mapped[str] = mapped_column(String(200))


class HealthReportRow(Base):
    """One health report of one node of one entity in an environment.

    Stored for the evaluation to read as integers: a million reports come out of SQLite
    as two integer columns more than twice as fast as with names, text times and states.
    """

    __tablename__ = "health_reports"
    __table_args__ = (
        Index("ix_health_reports_node_time", "node_id", "time_us"),
        Index("ix_health_reports_environment", "environment"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Also on the node; here so that a whole environment is read without a join.
    environment: Mapped[str] = mapped_column(String(63))
    node_id: Mapped[int] = mapped_column(
        ForeignKey("health_nodes.id", name="fk_health_reports_node_id")  # named in 0003
    )
    time: Mapped[datetime]
    time_us: Mapped[int] = mapped_column(BigInteger)  # `time` in UTC epoch microseconds
    live: Mapped[bool] = mapped_column()
    state_code: Mapped[int | None] = mapped_column(SmallInteger, default=None)
    version: Mapped[str] = mapped_column(String(100))
    received_at: Mapped[datetime]
    health_node: Mapped[HealthNodeRow] = relationship(lazy="joined", innerjoin=True)

    @property
    def entity(self) -> str:
        return self.health_node.entity

    @property
    def node(self) -> str:
        return self.health_node.node

    @property
    def state(self) -> str | None:
        """The HealthState name, or None for a report of liveness only."""
        return None if self.state_code is None else HEALTH_STATE_NAMES[self.state_code]


class UserRow(Base):
    """A user known to the store: the target of grants, group memberships and tokens."""

    __tablename__ = "users"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(200))
    # argon2id (PHC string) for logging in to the pages; None: tokens and OIDC only.
    password_hash: Mapped[str | None] = mapped_column(String(200), default=None)


class GroupMemberRow(Base):
    __tablename__ = "group_members"

    group: Mapped[str] = mapped_column("group_name", String(200), primary_key=True)
    user: Mapped[str] = mapped_column(
        String(200), ForeignKey("users.name", ondelete="CASCADE"), primary_key=True
    )


class GrantRow(Base):
    """A role given to `user:NAME` or `group:NAME` over some environments (none: all)."""

    __tablename__ = "grants"

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(String(210), index=True)
    role: Mapped[str] = mapped_column(String(20))
    environments: Mapped[list[Any]] = mapped_column(JSON, default=list)
    env_labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    granted_at: Mapped[datetime]
    granted_by: Mapped[str] = mapped_column(String(200))


class TokenRow(Base):
    """An API token: only its SHA-256 is kept; the token itself is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user: Mapped[str] = mapped_column(String(200), ForeignKey("users.name", ondelete="CASCADE"))
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class ApprovalRow(Base):
    """One person's verdict on one promotion; a person gives at most one."""

    __tablename__ = "approvals"
    __table_args__ = (UniqueConstraint("promotion_id", "user"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    promotion_id: Mapped[int] = mapped_column(ForeignKey("promotions.id", ondelete="CASCADE"))
    user: Mapped[str] = mapped_column(String(200))
    # The groups the user was in when approving: a rule counts what was true then.
    groups: Mapped[list[Any]] = mapped_column(JSON, default=list)
    verdict: Mapped[str] = mapped_column(String(10))  # approve | reject
    comment: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime]


class OutboxRow(Base):
    """A notification to deliver to one sink; written in the transaction of its event, so a
    crash between the event and the delivery loses nothing."""

    __tablename__ = "notification_outbox"
    __table_args__ = (Index("ix_outbox_due", "delivered_at", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sink: Mapped[str] = mapped_column(String(200))
    event: Mapped[str] = mapped_column(String(80))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str] = mapped_column(Text, default="")
