"""portfolio drafts

A learner's portfolio while it is filled in: the draft and its files, links and statements.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 09:53:51.359359
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import grader.models

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "portfolio_drafts",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("assessment_id", sa.Integer(), nullable=False),
        sa.Column("created_at", grader.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", grader.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("submission_id", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["assessment_id"],
            ["assessments.id"],
        ),
        sa.ForeignKeyConstraint(["submission_id"], ["submissions.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("portfolio_drafts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_portfolio_drafts_user_assessment", ["user_id", "assessment_id"], unique=False
        )

    op.create_table(
        "portfolio_draft_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("draft_id", sa.String(length=32), nullable=False),
        sa.Column("slot", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("media_type", sa.String(length=20), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", grader.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["draft_id"], ["portfolio_drafts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("portfolio_draft_items", schema=None) as batch_op:
        batch_op.create_index("ix_portfolio_draft_items_draft", ["draft_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("portfolio_draft_items", schema=None) as batch_op:
        batch_op.drop_index("ix_portfolio_draft_items_draft")

    op.drop_table("portfolio_draft_items")
    with op.batch_alter_table("portfolio_drafts", schema=None) as batch_op:
        batch_op.drop_index("ix_portfolio_drafts_user_assessment")

    op.drop_table("portfolio_drafts")
