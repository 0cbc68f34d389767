"""indexes for two plans found slow at a million appeals: the dashboard's list by status reads
the status columns from `ix_appeal_received` (it read every appeal of the period from the table
when few matched), and the doubtful messages get a partial index instead of the boolean one
(with statistics SQLite read every comment through `ix_citizen_message_appeal_id`) —
docs/BENCHMARKS.md, «Query plans»

Revision ID: 0009_status_doubtful_indexes
Revises: 0008_query_plans
Create Date: 2026-12-07 09:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_status_doubtful_indexes"
down_revision: str | None = "0008_query_plans"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The status filters' columns after the key (storage/models.py, bot/services/dashboard.py).
RECEIVED = ["received_at", "excluded", "answered_at", "sla_deadline"]


def upgrade() -> None:
    with op.batch_alter_table("appeal", schema=None) as batch_op:
        batch_op.drop_index("ix_appeal_received")
        batch_op.create_index("ix_appeal_received", RECEIVED, unique=False)
    with op.batch_alter_table("citizen_message", schema=None) as batch_op:
        batch_op.drop_index("ix_citizen_message_doubtful")
        # Partial: only the doubtful few; the condition as bot/services/doubtful.py writes it.
        batch_op.create_index(
            "ix_citizen_message_doubtful",
            ["page_id", "sent_at"],
            unique=False,
            sqlite_where=sa.text("doubtful = 1"),
            postgresql_where=sa.text("doubtful"),
        )


def downgrade() -> None:
    with op.batch_alter_table("citizen_message", schema=None) as batch_op:
        batch_op.drop_index("ix_citizen_message_doubtful")
        batch_op.create_index("ix_citizen_message_doubtful", ["doubtful"], unique=False)
    with op.batch_alter_table("appeal", schema=None) as batch_op:
        batch_op.drop_index("ix_appeal_received")
        batch_op.create_index("ix_appeal_received", ["received_at"], unique=False)
