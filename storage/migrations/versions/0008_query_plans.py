"""appeal indexes for plans without statistics: drop the boolean `ix_appeal_excluded` (SQLite
planned almost every appeal query through it, i.e. read every appeal kept), and index who
took appeals for the dashboard's operator filter (it read the whole table) — docs/BENCHMARKS.md,
«Query plans»

Revision ID: 0008_query_plans
Revises: 0007_frt_reply_day
Create Date: 2026-12-07 08:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_query_plans"
down_revision: str | None = "0007_frt_reply_day"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Partial: only the few appeals someone took are in it (storage/models.py).
TAKEN = sa.text("taken_by IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("appeal", schema=None) as batch_op:
        batch_op.drop_index("ix_appeal_excluded")
        batch_op.create_index(
            "ix_appeal_taken_by",
            ["taken_by", "page_id"],
            unique=False,
            sqlite_where=TAKEN,
            postgresql_where=TAKEN,
        )


def downgrade() -> None:
    with op.batch_alter_table("appeal", schema=None) as batch_op:
        batch_op.drop_index("ix_appeal_taken_by")
        batch_op.create_index("ix_appeal_excluded", ["excluded"], unique=False)
