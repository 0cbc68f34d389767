"""live cards, the final-answer stage, re-open deadlines, «Вернуть», «отписка»

Revision ID: 0002_cards
Revises: 0001
Create Date: 2026-12-07 00:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.types

revision: str = "0002_cards"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, storage.types.UTCDateTime(timezone=True), nullable=True)


def upgrade() -> None:
    op.create_table(
        "sent_card",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("appeal_id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("header", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=True),
        sa.Column("footer", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=True),
        sa.Column("more_after", sa.Integer(), nullable=True),
        sa.Column("sent_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=512), nullable=False),
        sa.Column("live", sa.Boolean(), nullable=False),
        sa.Column("recorded_at", storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["appeal_id"], ["appeal.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("chat_id", "message_id", "appeal_id", name="uq_sent_card"),
    )
    with op.batch_alter_table("sent_card", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sent_card_appeal_id"), ["appeal_id"], unique=False)
        batch_op.create_index("ix_sent_card_live_sent", ["live", "sent_at"], unique=False)
    with op.batch_alter_table("appeal", schema=None) as batch_op:
        batch_op.add_column(_utc("final_deadline"))
        batch_op.add_column(_utc("reopen_deadline"))
        batch_op.add_column(_utc("reanswered_at"))
        batch_op.add_column(sa.Column("reanswer_reply_id", sa.Integer(), nullable=True))
        batch_op.add_column(_utc("excluded_at"))
    with op.batch_alter_table("page", schema=None) as batch_op:
        batch_op.add_column(sa.Column("final_answer_days", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("final_answer_urgent_days", sa.Integer(), nullable=True))
    with op.batch_alter_table("official_reply", schema=None) as batch_op:
        batch_op.add_column(sa.Column("is_formal", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("official_reply", schema=None) as batch_op:
        batch_op.drop_column("is_formal")
    with op.batch_alter_table("page", schema=None) as batch_op:
        batch_op.drop_column("final_answer_urgent_days")
        batch_op.drop_column("final_answer_days")
    with op.batch_alter_table("appeal", schema=None) as batch_op:
        batch_op.drop_column("excluded_at")
        batch_op.drop_column("reanswer_reply_id")
        batch_op.drop_column("reanswered_at")
        batch_op.drop_column("reopen_deadline")
        batch_op.drop_column("final_deadline")
    with op.batch_alter_table("sent_card", schema=None) as batch_op:
        batch_op.drop_index("ix_sent_card_live_sent")
        batch_op.drop_index(batch_op.f("ix_sent_card_appeal_id"))
    op.drop_table("sent_card")
