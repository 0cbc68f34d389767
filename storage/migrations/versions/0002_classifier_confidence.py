"""classifier confidence and model per citizen message; decisions on messages

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06 23:55:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("citizen_message", schema=None) as batch_op:
        batch_op.add_column(sa.Column("confidence", sa.Float(), nullable=True))
        batch_op.add_column(
            sa.Column("model_version", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
        batch_op.add_column(
            sa.Column("doubtful", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.create_index(batch_op.f("ix_citizen_message_doubtful"), ["doubtful"], unique=False)
    with op.batch_alter_table("decision", schema=None) as batch_op:
        batch_op.add_column(sa.Column("citizen_message_id", sa.Integer(), nullable=True))
        batch_op.alter_column("appeal_id", existing_type=sa.Integer(), nullable=True)
        batch_op.create_index(
            batch_op.f("ix_decision_citizen_message_id"), ["citizen_message_id"], unique=False
        )
        batch_op.create_foreign_key(
            "fk_decision_citizen_message_id", "citizen_message", ["citizen_message_id"], ["id"]
        )


def downgrade() -> None:
    # Decisions on messages that are no appeal cannot exist in the old schema.
    op.execute("DELETE FROM decision WHERE appeal_id IS NULL")
    with op.batch_alter_table("decision", schema=None) as batch_op:
        batch_op.drop_constraint("fk_decision_citizen_message_id", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_decision_citizen_message_id"))
        batch_op.alter_column("appeal_id", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column("citizen_message_id")
    with op.batch_alter_table("citizen_message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_citizen_message_doubtful"))
        batch_op.drop_column("doubtful")
        batch_op.drop_column("model_version")
        batch_op.drop_column("confidence")
