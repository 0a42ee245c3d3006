"""queue index

Queue position and admission read a range of (queue, status, requested_at), not the whole table.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 19:29:19.366361
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("grading_runs", schema=None) as batch_op:
        batch_op.create_index("ix_grading_runs_waiting", ["queue", "status", "requested_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("grading_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_grading_runs_waiting")
