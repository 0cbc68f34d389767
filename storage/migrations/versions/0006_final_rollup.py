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

COLUMNS = (
    "final_answered",
    "final_in_time",
    "final_overdue",
    "final_pending",
    "formal_replies",
    "reopened",
)
BATCH = 10_000


def upgrade() -> None:
    with op.batch_alter_table("appeal_rollup", schema=None) as batch_op:
        for name in COLUMNS:
            batch_op.add_column(sa.Column(name, sa.Integer(), nullable=False, server_default="0"))
    _resettle()
    from storage import rollup  # the one rollup code, at this revision's tables

    rollup.rebuild(op.get_bind())


def _resettle() -> None:
    """Settle days now wait for the final stage too (storage/buckets.py `settle_moment`)."""
    from storage.buckets import DERIVED_FROM, derived_appeal_columns

    bind = op.get_bind()
    utc = storage.types.UTCDateTime(timezone=True)
    times = {
        "first_response_at",
        "answered_offline_at",
        "final_response_at",
        "reopened_at",
        "rated_at",
        "sla_deadline",
        "final_deadline",
        "reopen_deadline",
        "reanswered_at",
    }
    appeal = sa.table(
        "appeal",
        sa.column("id", sa.Integer()),
        sa.column("settle_day", sa.Integer()),
        *(sa.column(name, utc if name in times else sa.Float()) for name in DERIVED_FROM),
    )
    last = 0
    while True:
        rows = bind.execute(
            sa.select(appeal)
            .where(appeal.c.final_deadline.is_not(None), appeal.c.id > last)
            .order_by(appeal.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        updates = []
        for row in rows:
            values = row._mapping
            settle = derived_appeal_columns(values)["settle_day"]
            if settle != values["settle_day"]:
                updates.append({"appeal_id": values["id"], "settle": settle})
        if updates:
            bind.execute(
                appeal.update()
                .where(appeal.c.id == sa.bindparam("appeal_id"))
                .values(settle_day=sa.bindparam("settle")),
                updates,
            )
        last = rows[-1][0]


def downgrade() -> None:
    with op.batch_alter_table("appeal_rollup", schema=None) as batch_op:
        for name in reversed(COLUMNS):
            batch_op.drop_column(name)
