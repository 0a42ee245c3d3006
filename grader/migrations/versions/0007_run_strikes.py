"""run strikes

The tries of a grading run that the submission itself may have caused, apart from its deliveries:
only these count toward the error limit.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 06:25:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("grading_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("strikes", sa.Integer(), server_default=sa.text("0"), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("grading_runs", schema=None) as batch_op:
        batch_op.drop_column("strikes")
