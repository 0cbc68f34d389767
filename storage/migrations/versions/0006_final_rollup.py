"""the final-answer stage in the report rollups (issue 14: the overview at 1 M appeals)

Revision ID: 0006_final_rollup
Revises: 0002_cards
Create Date: 2026-12-07 03:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = "0006_final_rollup"
down_revision: str | None = "0002_cards"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTS = (
    "final_answered",
    "final_in_time",
    "final_overdue",
    "final_pending",
    "formal_replies",
    "reopened",
)
BATCH = 10_000


def upgrade() -> None:
    op.create_table(
        "appeal_final_rollup",
        sa.Column("page_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("settle_day", sa.Integer(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in COUNTS),
        sa.PrimaryKeyConstraint("page_id", "day", "settle_day"),
    )
    with op.batch_alter_table("appeal", schema=None) as batch_op:
        batch_op.add_column(sa.Column("final_settle_day", sa.Integer(), nullable=True))
        batch_op.create_index(
            "ix_appeal_final_settle", ["page_id", "final_settle_day", "received_at"], unique=False
        )
    # The table is filled by 0007, which gives it its final key (the rollup code fills the
    # tables of the newest revision only).
    _settle_final_stages()


def _settle_final_stages() -> int:
    """Fill `final_settle_day` (storage/buckets.py `final_settle_moment`); returns appeals."""
    from storage.buckets import day_number, final_settle_moment

    bind = op.get_bind()
    utc = storage.types.UTCDateTime(timezone=True)
    names = (
        "final_deadline",
        "final_response_at",
        "answered_offline_at",
        "reopened_at",
        "reopen_deadline",
        "reanswered_at",
    )
    appeal = sa.table(
        "appeal",
        sa.column("id", sa.Integer()),
        sa.column("final_settle_day", sa.Integer()),
        *(sa.column(name, utc) for name in names),
    )
    last = done = 0
    while True:
        rows = bind.execute(
            sa.select(appeal.c.id, *(appeal.c[name] for name in names))
            .where(appeal.c.final_deadline.is_not(None), appeal.c.id > last)
            .order_by(appeal.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return done
        updates = []
        for appeal_id, *values in rows:
            moment = final_settle_moment(**dict(zip(names, values, strict=True)))
            assert moment is not None  # a final deadline is set
            updates.append({"appeal_id": appeal_id, "settle": day_number(moment)})
        bind.execute(
            appeal.update()
            .where(appeal.c.id == sa.bindparam("appeal_id"))
            .values(final_settle_day=sa.bindparam("settle")),
            updates,
        )
        done += len(rows)
        last = rows[-1][0]


def downgrade() -> None:
    with op.batch_alter_table("appeal", schema=None) as batch_op:
        batch_op.drop_index("ix_appeal_final_settle")
        batch_op.drop_column("final_settle_day")
    op.drop_table("appeal_final_rollup")
