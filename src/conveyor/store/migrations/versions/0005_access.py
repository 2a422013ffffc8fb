"""users, groups, grants, API tokens, approvals, the notification outbox

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 23:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("name", sa.String(length=200), primary_key=True),
        sa.Column("created_at", _AT, nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
    )
    op.create_table(
        "group_members",
        sa.Column("group_name", sa.String(length=200), primary_key=True),
        sa.Column(
            "user",
            sa.String(length=200),
            sa.ForeignKey("users.name", ondelete="CASCADE"),
            primary_key=True,
        ),
    )
    op.create_table(
        "grants",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("subject", sa.String(length=210), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("environments", sa.JSON(), nullable=False),
        sa.Column("env_labels", sa.JSON(), nullable=False),
        sa.Column("granted_at", _AT, nullable=False),
        sa.Column("granted_by", sa.String(length=200), nullable=False),
    )
    op.create_index("ix_grants_subject", "grants", ["subject"])
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "user",
            sa.String(length=200),
            sa.ForeignKey("users.name", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("digest", sa.String(length=64), nullable=False, unique=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", _AT, nullable=False),
        sa.Column("expires_at", _AT, nullable=False),
        sa.Column("revoked_at", _AT),
    )
    op.create_table(
        "approvals",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "promotion_id",
            sa.Integer(),
            sa.ForeignKey("promotions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("user", sa.String(length=200), nullable=False),
        sa.Column("groups", sa.JSON(), nullable=False),
        sa.Column("verdict", sa.String(length=10), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("at", _AT, nullable=False),
        sa.UniqueConstraint("promotion_id", "user"),
    )
    op.create_table(
        "notification_outbox",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("sink", sa.String(length=200), nullable=False),
        sa.Column("event", sa.String(length=80), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", _AT, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _AT, nullable=False),
        sa.Column("delivered_at", _AT),
        sa.Column("last_error", sa.Text(), nullable=False),
    )
    op.create_index("ix_outbox_due", "notification_outbox", ["delivered_at", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_outbox_due", table_name="notification_outbox")
    op.drop_table("notification_outbox")
    op.drop_table("approvals")
    op.drop_table("api_tokens")
    op.drop_index("ix_grants_subject", table_name="grants")
    op.drop_table("grants")
    op.drop_table("group_members")
    op.drop_table("users")
