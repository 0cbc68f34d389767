"""covering indexes for the dashboard's operators page: it read the whole `official_reply` and
`decision` tables (with statistics SQLite skip-scanned `ix_official_reply_thread_sent` and read
every reply's row: 2.1 s at a million appeals); now the period's replies and takes are read
from the indexes alone — docs/BENCHMARKS.md, «Query plans»

Revision ID: 0010_operators_work_indexes
Revises: 0009_status_doubtful_indexes
Create Date: 2026-12-07 09:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_operators_work_indexes"
down_revision: str | None = "0009_status_doubtful_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The period's key, then every column bot/services/dashboard.operators_work reads
# (storage/models.py): the index answers the query without the table's rows.
REPLY_WORK = [
    "sent_at",
    "author_role",
    "appeal_id",
    "author_id",
    "author_name",
    "is_interim",
    "quality_score",
    "page_id",
]
# Partial, the takes only: an index of every decision led by `decided_at` drew the plans that
# order decisions by it (bot/services/doubtful.py `_earlier_decision`: a walk of the whole index).
# `action` too: SQLite (3.40) reads a column of the condition from the table otherwise.
DECISION_TAKEN = ["decided_at", "action", "appeal_id", "actor_id", "actor_name"]
TAKEN = sa.text("action = 'taken'")


def upgrade() -> None:
    with op.batch_alter_table("official_reply", schema=None) as batch_op:
        batch_op.create_index("ix_official_reply_work", REPLY_WORK, unique=False)
    with op.batch_alter_table("decision", schema=None) as batch_op:
        batch_op.create_index(
            "ix_decision_taken",
            DECISION_TAKEN,
            unique=False,
            sqlite_where=TAKEN,
            postgresql_where=TAKEN,
        )


def downgrade() -> None:
    with op.batch_alter_table("decision", schema=None) as batch_op:
        batch_op.drop_index("ix_decision_taken")
    with op.batch_alter_table("official_reply", schema=None) as batch_op:
        batch_op.drop_index("ix_official_reply_work")
