"""engine ownership and due times: leases, rollbacks by a column, when to look again

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "engine_leases",
        sa.Column("owner", sa.String(length=80), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(length=20), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("renewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("owner"),
    )
    # Plain ALTER TABLE, not batch mode: SQLite's batch mode copies a table, and these are
    # referenced by foreign keys. Adding and (SQLite >= 3.35) dropping a column needs no copy.
    op.add_column("releases", sa.Column("next_look_at", sa.DateTime(timezone=True)))
    op.add_column(
        "releases",
        sa.Column("watch_health", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.create_index("ix_releases_next_look_at", "releases", ["next_look_at"])
    op.add_column(
        "promotions",
        sa.Column("rollback", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column(
        "promotions",
        sa.Column("plugin_errors", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column(
        "task_runs", sa.Column("takeovers", sa.Integer(), nullable=False, server_default="0")
    )

    # Rollbacks were told apart by their node's name; their policy snapshot says so for sure.
    if op.get_context().as_sql:  # offline SQL: no rows to read
        return
    bind = op.get_bind()
    promotions = sa.table(
        "promotions",
        sa.column("id", sa.Integer()),
        sa.column("node", sa.String()),
        sa.column("policy", sa.JSON()),
        sa.column("rollback", sa.Boolean()),
    )
    rows = bind.execute(
        sa.select(promotions.c.id, promotions.c.policy).where(promotions.c.node.like("rollback-%"))
    ).all()
    ids = [pid for pid, policy in rows if isinstance(policy, dict) and "rollback" in policy]
    if ids:
        bind.execute(promotions.update().where(promotions.c.id.in_(ids)).values(rollback=sa.true()))
    # Every release the engine had something to do for is due at once after the upgrade.
    bind.execute(
        sa.text(
            "UPDATE releases SET next_look_at = created_at WHERE status IN ('running', 'failed')"
            " OR EXISTS (SELECT 1 FROM promotions p WHERE p.release_id = releases.id"
            " AND (p.state IN ('waiting', 'running', 'verifying') OR p.fail_hooks_pending))"
            " OR EXISTS (SELECT 1 FROM task_runs t WHERE t.release_id = releases.id"
            " AND t.status IN ('queued', 'running', 'retrying', 'polling'))"
        )
    )


def downgrade() -> None:
    op.drop_column("task_runs", "takeovers")
    op.drop_column("promotions", "plugin_errors")
    op.drop_column("promotions", "rollback")
    op.drop_index("ix_releases_next_look_at", "releases")
    op.drop_column("releases", "watch_health")
    op.drop_column("releases", "next_look_at")
    op.drop_table("engine_leases")
