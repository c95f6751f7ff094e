"""feedback: a score and comment per (execution, user), its own table (it was an audit event)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04

Feedback given before this revision stays in the audit log (`event="feedback"`); it is not copied: the audit
row never carried the execution's version, and the audit log keeps recording every feedback given.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("execution_id", sa.String(64), nullable=False),
        sa.Column("thread_id", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("role", sa.String(64), nullable=False),
        sa.Column("score", sa.Numeric(5, 4, asdecimal=True), nullable=False),
        sa.Column("comment", sa.Text),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.CheckConstraint("score >= -1 AND score <= 1", name=op.f("ck_feedback_score")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
        sa.UniqueConstraint("execution_id", "user_id", name=op.f("uq_feedback_execution_id_user_id")),
    )
    op.create_index(op.f("ix_feedback_updated_at"), "feedback", ["updated_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_feedback_updated_at"), table_name="feedback")
    op.drop_table("feedback")
