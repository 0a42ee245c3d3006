"""verdicts: attempts charged, late work, extensions, publication, audit log

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 21:44:01.676587
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import grader.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", grader.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=50), nullable=False),
        sa.Column("learner_id", sa.Integer(), nullable=True),
        sa.Column("assessment_id", sa.Integer(), nullable=True),
        sa.Column("submission_id", sa.String(length=32), nullable=True),
        sa.Column("subject", sa.String(length=100), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["assessment_id"],
            ["assessments.id"],
        ),
        sa.ForeignKeyConstraint(["learner_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index("ix_audit_events_learner", ["learner_id"], unique=False)
        batch_op.create_index("ix_audit_events_submission", ["submission_id"], unique=False)

    op.create_table(
        "extensions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("assessment_id", sa.Integer(), nullable=False),
        sa.Column("due_at", grader.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("granted_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", grader.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["assessment_id"], ["assessments.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "assessment_id"),
    )
    with op.batch_alter_table("assessments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("results_published_at", grader.models.UTCDateTime(timezone=True), nullable=True)
        )

    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.add_column(sa.Column("carried_from_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_reviews_carried_from", "reviews", ["carried_from_id"], ["id"])

    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("charged", sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.add_column(sa.Column("late_penalty", sa.Float(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("due_at", grader.models.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("submissions", schema=None) as batch_op:
        batch_op.drop_column("due_at")
        batch_op.drop_column("late_penalty")
        batch_op.drop_column("charged")

    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.drop_constraint("fk_reviews_carried_from", type_="foreignkey")
        batch_op.drop_column("carried_from_id")

    with op.batch_alter_table("assessments", schema=None) as batch_op:
        batch_op.drop_column("results_published_at")

    op.drop_table("extensions")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_submission")
        batch_op.drop_index("ix_audit_events_learner")

    op.drop_table("audit_events")
