"""report rollups keyed for the dashboard at 1 M appeals: FRT histogram by reply day, per
month, and the final stage's quiet day (issue 14)

Revision ID: 0007_frt_reply_day
Revises: 0006_final_rollup
Create Date: 2026-12-07 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_frt_reply_day"
down_revision: str | None = "0006_final_rollup"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FINAL_COUNTS = (
    "final_answered",
    "final_in_time",
    "final_overdue",
    "final_pending",
    "formal_replies",
    "reopened",
)


def _frt_rollup(second_key: str) -> None:
    op.create_table(
        "appeal_frt_rollup",
        sa.Column("page_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Integer(), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column(second_key, sa.Integer(), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("page_id", "kind", "day", second_key, "bucket"),
    )


def _final_rollup(*keys: str) -> None:
    op.create_table(
        "appeal_final_rollup",
        *(sa.Column(name, sa.Integer(), nullable=False) for name in keys),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in FINAL_COUNTS),
        sa.PrimaryKeyConstraint(*keys),
    )


# The settle indexes with the moments a report filters their appeals by (storage/models.py).
SETTLE = ("page_id", "settle_day", "received_at", "excluded", "first_response_at")
FINAL_SETTLE = (
    "page_id",
    "final_settle_day",
    "received_at",
    "excluded",
    "final_response_at",
    "answered_offline_at",
    "reopened_at",
    "final_deadline",
)


def _settle_indexes(settle: Sequence[str], final_settle: Sequence[str]) -> None:
    with op.batch_alter_table("appeal", schema=None) as batch_op:
        batch_op.drop_index("ix_appeal_settle")
        batch_op.drop_index("ix_appeal_final_settle")
        batch_op.create_index("ix_appeal_settle", list(settle), unique=False)
        batch_op.create_index("ix_appeal_final_settle", list(final_settle), unique=False)


def upgrade() -> None:
    _settle_indexes(SETTLE, FINAL_SETTLE)
    op.drop_table("appeal_frt_rollup")
    _frt_rollup("reply_day")
    op.create_index("ix_appeal_frt_rollup_reply", "appeal_frt_rollup", ["reply_day", "page_id"])
    op.create_table(
        "appeal_frt_month",
        sa.Column("page_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Integer(), nullable=False),
        sa.Column("month", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("page_id", "kind", "month", "bucket"),
    )
    op.drop_table("appeal_final_rollup")
    _final_rollup("page_id", "day", "settle_day", "quiet_day")
    from storage import rollup  # the one rollup code, at this revision's tables

    rollup.rebuild_final_and_histograms(op.get_bind())


def downgrade() -> None:
    _settle_indexes(SETTLE[:3], FINAL_SETTLE[:3])
    op.drop_table("appeal_frt_month")
    op.drop_index("ix_appeal_frt_rollup_reply", "appeal_frt_rollup")
    op.drop_table("appeal_frt_rollup")
    _frt_rollup("settle_day")
    op.drop_table("appeal_final_rollup")
    _final_rollup("page_id", "day", "settle_day")
    # The older code refreshes marked page-days before every report: mark them all.
    from storage.rollup import day_of

    bind = op.get_bind()
    appeal = sa.table(
        "appeal", sa.column("page_id", sa.Integer()), sa.column("received_at", sa.DateTime())
    )
    stale = sa.table("rollup_stale", sa.column("page_id"), sa.column("day"))
    days = sa.select(appeal.c.page_id, day_of(bind, appeal.c.received_at)).distinct()
    bind.execute(stale.insert().from_select(["page_id", "day"], days))
