"""users' password hashes (argon2id), for logging in to the pages

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 05:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as users:
        users.add_column(sa.Column("password_hash", sa.String(length=200)))


def downgrade() -> None:
    with op.batch_alter_table("users") as users:
        users.drop_column("password_hash")
