"""template hash of official replies: the hourly `quality.score_replies` read every reply of a
page ever written to find identical texts (40.5 s at 1.08 million replies); now
`official_reply.template_hash` (storage/templates.py) with `ix_official_reply_template` answers
«another reply of this page with the same text» by one lookup, and the appeals a rescored reply
closes are found by `ix_appeal_first_reply_id` / `ix_appeal_final_reply_id` — docs/BENCHMARKS.md,
«Reply quality»

Revision ID: 0011_reply_template_hash
Revises: 0010_operators_work_indexes
Create Date: 2026-12-07 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.templates import template_hash

revision: str = "0011_reply_template_hash"
down_revision: str | None = "0010_operators_work_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 5000


def upgrade() -> None:
    with op.batch_alter_table("official_reply", schema=None) as batch_op:
        batch_op.add_column(sa.Column("template_hash", sa.BigInteger(), nullable=True))
    # Every reply stored so far gets its hash (in id order, a batch at a time).
    bind = op.get_bind()
    last = 0
    while True:
        rows = bind.execute(
            sa.text("SELECT id, text FROM official_reply WHERE id > :last ORDER BY id LIMIT :n"),
            {"last": last, "n": BATCH},
        ).all()
        if not rows:
            break
        bind.execute(
            sa.text("UPDATE official_reply SET template_hash = :hash WHERE id = :id"),
            [{"id": rid, "hash": template_hash(text)} for rid, text in rows],
        )
        last = rows[-1][0]
    with op.batch_alter_table("official_reply", schema=None) as batch_op:
        batch_op.create_index(
            "ix_official_reply_template", ["template_hash", "page_id", "appeal_id"], unique=False
        )
    with op.batch_alter_table("appeal", schema=None) as batch_op:
        batch_op.create_index(op.f("ix_appeal_first_reply_id"), ["first_reply_id"], unique=False)
        batch_op.create_index(op.f("ix_appeal_final_reply_id"), ["final_reply_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("appeal", schema=None) as batch_op:
        batch_op.drop_index(op.f("ix_appeal_final_reply_id"))
        batch_op.drop_index(op.f("ix_appeal_first_reply_id"))
    with op.batch_alter_table("official_reply", schema=None) as batch_op:
        batch_op.drop_index("ix_official_reply_template")
        batch_op.drop_column("template_hash")
