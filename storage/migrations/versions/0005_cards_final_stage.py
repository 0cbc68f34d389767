"""live cards, the final-answer stage, re-open deadlines, «Вернуть», «отписка»

Revision ID: 0002_cards
Revises: 0004_web_login
Create Date: 2026-12-07 00:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.types

revision: str = "0002_cards"
down_revision: str | None = "0004_web_login"
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
    _fill_final_deadlines()


def _fill_final_deadlines() -> None:
    """Give appeals stored before this revision their final deadline (docs/METRICS.md 2a).

    The page's own time zone and hours, else the defaults of `.env.example` (Moscow,
    09:00-18:00, 7 working days, 1 for urgent ones): settings are not read by migrations.
    """
    from bot.services.worktime import calendar_for  # the one working calendar

    bind = op.get_bind()
    pages = {
        row[0]: row[1:]
        for row in bind.execute(sa.text("SELECT id, timezone, work_hours FROM page")).all()
    }
    appeal = sa.table(
        "appeal",
        sa.column("id", sa.Integer()),
        sa.column("page_id", sa.Integer()),
        sa.column("received_at", storage.types.UTCDateTime(timezone=True)),
        sa.column("urgent", sa.Boolean()),
        sa.column("final_deadline", storage.types.UTCDateTime(timezone=True)),
    )
    rows = bind.execute(
        sa.select(appeal.c.id, appeal.c.page_id, appeal.c.received_at, appeal.c.urgent).where(
            appeal.c.final_deadline.is_(None)
        )
    ).all()
    updates = []
    for appeal_id, page_id, received, urgent in rows:
        timezone, work_hours = pages.get(page_id, (None, None))
        calendar = calendar_for(timezone or "Europe/Moscow", work_hours or "09:00-18:00")
        due = calendar.end_of_working_day_after(received, 1 if urgent else 7)
        updates.append({"appeal_id": appeal_id, "due": due})
    if updates:
        bind.execute(
            appeal.update()
            .where(appeal.c.id == sa.bindparam("appeal_id"))
            .values(final_deadline=sa.bindparam("due")),
            updates,
        )


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
