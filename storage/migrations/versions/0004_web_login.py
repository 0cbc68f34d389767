"""web_login: one-time dashboard credentials (issue 14)

Revision ID: 0004_web_login
Revises: 0003_page_health
Create Date: 2026-12-07 00:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.types

revision: str = "0004_web_login"
down_revision: str | None = "0003_page_health"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "web_login",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("secret_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", storage.types.UTCDateTime(), nullable=False),
        sa.Column("expires_at", storage.types.UTCDateTime(), nullable=False),
        sa.Column("used_at", storage.types.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_web_login_secret_hash"), "web_login", ["secret_hash"], unique=True)
    op.create_index(op.f("ix_web_login_expires_at"), "web_login", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_web_login_expires_at"), table_name="web_login")
    op.drop_index(op.f("ix_web_login_secret_hash"), table_name="web_login")
    op.drop_table("web_login")
