"""review workflow

Tasks and claims, review versions, inline comments, comment bank, regrade requests, program staff,
session generations and login lockout.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 23:28:54.492968
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import grader.models

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "comment_bank",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rubric_slug", sa.String(length=100), nullable=False),
        sa.Column("criterion_id", sa.String(length=100), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column("updated_at", grader.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("comment_bank", schema=None) as batch_op:
        batch_op.create_index("ix_comment_bank_rubric", ["rubric_slug"], unique=False)

    op.create_table(
        "program_staff",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("created_at", grader.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "program_id"),
    )
    op.create_table(
        "regrade_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("submission_id", sa.String(length=32), nullable=False),
        sa.Column("result_id", sa.Integer(), nullable=False),
        sa.Column("criterion_id", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.Integer(), nullable=False),
        sa.Column("created_at", grader.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("answered_by", sa.Integer(), nullable=True),
        sa.Column("reply", sa.Text(), nullable=False),
        sa.Column("answered_at", grader.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("changed", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["answered_by"],
            ["users.id"],
        ),
        sa.ForeignKeyConstraint(
            ["requested_by"],
            ["users.id"],
        ),
        sa.ForeignKeyConstraint(["result_id"], ["results.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["submission_id"], ["submissions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "review_tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("result_id", sa.Integer(), nullable=False),
        sa.Column("submission_id", sa.String(length=32), nullable=False),
        sa.Column("slot", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reviewer_id", sa.Integer(), nullable=True),
        sa.Column("claimed_at", grader.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("expires_at", grader.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("assigned_by", sa.String(length=200), nullable=True),
        sa.Column("excluded_reviewer_id", sa.Integer(), nullable=True),
        sa.Column("regrade_request_id", sa.Integer(), nullable=True),
        sa.Column("created_at", grader.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("completed_at", grader.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["excluded_reviewer_id"],
            ["users.id"],
        ),
        sa.ForeignKeyConstraint(
            ["regrade_request_id"],
            ["regrade_requests.id"],
        ),
        sa.ForeignKeyConstraint(["result_id"], ["results.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["reviewer_id"],
            ["users.id"],
        ),
        sa.ForeignKeyConstraint(["submission_id"], ["submissions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("review_tasks", schema=None) as batch_op:
        batch_op.create_index("ix_review_tasks_status", ["status", "created_at"], unique=False)

    op.create_table(
        "review_comments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("review_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=1000), nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", grader.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["review_id"], ["reviews.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.add_column(sa.Column("task_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("slot", sa.String(length=20), nullable=False, server_default="first"))
        batch_op.add_column(
            sa.Column("state", sa.String(length=20), nullable=False, server_default="submitted")
        )
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
        batch_op.add_column(sa.Column("supersedes_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("adjustment", sa.Float(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("adjustment_reason", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(
            sa.Column(
                "updated_at",
                grader.models.UTCDateTime(timezone=True),
                nullable=False,
                server_default=sa.func.now(),
            )
        )
        batch_op.create_foreign_key("fk_reviews_task", "review_tasks", ["task_id"], ["id"])
        batch_op.create_foreign_key("fk_reviews_supersedes", "reviews", ["supersedes_id"], ["id"])

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("session_generation", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column("locked_until", grader.models.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("locked_until")
        batch_op.drop_column("failed_logins")
        batch_op.drop_column("session_generation")

    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.drop_constraint("fk_reviews_supersedes", type_="foreignkey")
        batch_op.drop_constraint("fk_reviews_task", type_="foreignkey")
        batch_op.drop_column("updated_at")
        batch_op.drop_column("adjustment_reason")
        batch_op.drop_column("adjustment")
        batch_op.drop_column("supersedes_id")
        batch_op.drop_column("version")
        batch_op.drop_column("state")
        batch_op.drop_column("slot")
        batch_op.drop_column("task_id")

    op.drop_table("review_comments")
    with op.batch_alter_table("review_tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_review_tasks_status")

    op.drop_table("review_tasks")
    op.drop_table("regrade_requests")
    op.drop_table("program_staff")
    with op.batch_alter_table("comment_bank", schema=None) as batch_op:
        batch_op.drop_index("ix_comment_bank_rubric")

    op.drop_table("comment_bank")
