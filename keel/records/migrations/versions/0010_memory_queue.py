"""memory_queue: run memories written off the request path; executions (user_id, started_at, execution_id)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04

finalize queues the run's memory in the records transaction that ends the execution; a background writer
embeds it, writes it to long-term memory and deletes the row, so a crash never loses one. The new index on
executions serves recall's newest-first read of one user (it read the user's whole history through
`ix_executions_user_id`, which the new index replaces: its first column serves every lookup by user).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)
_RECALL = ["user_id", "started_at", "execution_id"]


def upgrade() -> None:
    op.create_table(
        "memory_queue",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("execution_id", sa.String(64), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("last_error", sa.Text),
        sa.Column("claimed_until", _TS),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_memory_queue")),
        sa.UniqueConstraint("execution_id", name=op.f("uq_memory_queue_execution_id")),
    )
    op.create_index(op.f("ix_memory_queue_user_id_tenant"), "memory_queue", ["user_id", "tenant"])
    op.create_index(op.f("ix_executions_user_id_started_at_execution_id"), "executions", _RECALL)
    op.drop_index(op.f("ix_executions_user_id"), table_name="executions")


def downgrade() -> None:
    op.create_index(op.f("ix_executions_user_id"), "executions", ["user_id"])
    op.drop_index(op.f("ix_executions_user_id_started_at_execution_id"), table_name="executions")
    op.drop_table("memory_queue")
