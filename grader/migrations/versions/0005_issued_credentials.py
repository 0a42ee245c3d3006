"""issued credentials

The signed Open Badges document of each award, its place in the status lists, and why an award was
revoked.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 18:59:11.416392
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import grader.models

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "issued_credentials",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("award_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("status_index", sa.Integer(), nullable=False),
        sa.Column("recipient_salt", sa.String(length=64), nullable=False),
        sa.Column("document", sa.JSON(), nullable=True),
        sa.Column("jwt", sa.Text(), nullable=True),
        sa.Column("hidden_results", sa.JSON(), nullable=False),
        sa.Column("created_at", grader.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("issued_at", grader.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("suspended_at", grader.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", grader.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revocation_reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["award_id"], ["credential_awards.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("status_index"),
    )
    with op.batch_alter_table("issued_credentials", schema=None) as batch_op:
        batch_op.create_index(
            "uq_issued_credentials_live_award",
            ["award_id"],
            unique=True,
            sqlite_where=sa.text("status != 'revoked'"),
            postgresql_where=sa.text("status != 'revoked'"),
        )

    with op.batch_alter_table("credential_awards", schema=None) as batch_op:
        batch_op.add_column(sa.Column("revocation_reason", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("credential_awards", schema=None) as batch_op:
        batch_op.drop_column("revocation_reason")

    with op.batch_alter_table("issued_credentials", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_issued_credentials_live_award",
            sqlite_where=sa.text("status != 'revoked'"),
            postgresql_where=sa.text("status != 'revoked'"),
        )

    op.drop_table("issued_credentials")
