"""health reports as integers: nodes named once, times in epoch microseconds, state codes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 07:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# tables.HEALTH_STATE_CODES as of this revision: stored values, never renumbered.
STATES = ("HEALTHY", "DEFERRING", "WARNING", "REPAIRING", "SUSPENDED", "TERMINAL", "ERROR")
TO_CODE = "CASE state " + " ".join(f"WHEN '{s}' THEN {c}" for c, s in enumerate(STATES, 1)) + " END"
TO_NAME = (
    "CASE state_code " + " ".join(f"WHEN {c} THEN '{s}'" for c, s in enumerate(STATES, 1)) + " END"
)

# `time` in UTC epoch microseconds. SQLite keeps it as UTC text ('2026-01-05 09:00:00.000000',
# microseconds from the 21st character); PostgreSQL's EXTRACT(EPOCH) is a float before
# version 14, so whole seconds and microseconds are taken apart to stay exact.
TIME_US = {
    # strftime('%s') would round the fraction (…:15.999999 gives 16 s): whole seconds only.
    "sqlite": "CAST(strftime('%s', substr(time, 1, 19)) AS INTEGER) * 1000000"
    " + CAST(substr(time, 21, 6) AS INTEGER)",
    "postgresql": "CAST(EXTRACT(EPOCH FROM date_trunc('second', time)) AS BIGINT) * 1000000"
    " + CAST(EXTRACT(MICROSECONDS FROM time) AS BIGINT) % 1000000",
}
NODE_FK = "fk_health_reports_node_id"
NODE_OF_REPORT = (
    "SELECT n.{column} FROM health_nodes n WHERE n.{match}"
    " AND n.environment = health_reports.environment"
)


def upgrade() -> None:
    op.create_table(
        "health_nodes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("environment", sa.String(length=63), nullable=False),
        sa.Column("entity", sa.String(length=200), nullable=False),
        sa.Column("node", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("environment", "entity", "node"),
    )
    op.execute(
        "INSERT INTO health_nodes (environment, entity, node)"
        " SELECT DISTINCT environment, entity, node FROM health_reports"
    )
    with op.batch_alter_table("health_reports") as batch:
        batch.add_column(sa.Column("node_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("time_us", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("state_code", sa.SmallInteger(), nullable=True))
    node_id = NODE_OF_REPORT.format(
        column="id",
        match="entity = health_reports.entity AND n.node = health_reports.node",
    )
    op.execute(
        f"UPDATE health_reports SET node_id = ({node_id}),"
        f" time_us = {TIME_US[op.get_context().dialect.name]}, state_code = {TO_CODE}"
    )
    with op.batch_alter_table("health_reports") as batch:
        batch.drop_index("ix_health_reports_env_entity_time")
        batch.alter_column("node_id", existing_type=sa.Integer(), nullable=False)
        batch.alter_column("time_us", existing_type=sa.BigInteger(), nullable=False)
        # Named, unlike 0001's constraints: Alembic's batch mode adds only named ones.
        batch.create_foreign_key(NODE_FK, "health_nodes", ["node_id"], ["id"])
        batch.drop_column("entity")
        batch.drop_column("node")
        batch.drop_column("state")
        batch.create_index("ix_health_reports_node_time", ["node_id", "time_us"], unique=False)
        batch.create_index("ix_health_reports_environment", ["environment"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("health_reports") as batch:
        batch.add_column(sa.Column("entity", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("node", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("state", sa.String(length=20), nullable=True))
    entity, node = (
        NODE_OF_REPORT.format(column=column, match="id = health_reports.node_id")
        for column in ("entity", "node")
    )
    op.execute(f"UPDATE health_reports SET entity = ({entity}), node = ({node}), state = {TO_NAME}")
    with op.batch_alter_table("health_reports") as batch:
        batch.drop_index("ix_health_reports_node_time")
        batch.alter_column("entity", existing_type=sa.String(length=200), nullable=False)
        batch.alter_column("node", existing_type=sa.String(length=200), nullable=False)
        batch.drop_column("node_id")
        batch.drop_column("time_us")
        batch.drop_column("state_code")
        batch.create_index(
            "ix_health_reports_env_entity_time", ["environment", "entity", "time"], unique=False
        )
    op.drop_table("health_nodes")
