"""initial records schema: executions, audit, approvals, tool_results, outbox

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def _in(column: str, *values: str) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "executions",
        sa.Column("execution_id", sa.String(64), nullable=False),
        sa.Column("thread_id", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("role", sa.String(64), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("task", sa.Text, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("terminated_reason", sa.String(64)),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("ended_at", _TS),
        sa.Column("duration_ms", sa.Integer),
        sa.Column("steps", sa.Integer, nullable=False),
        sa.Column("input_tokens", sa.Integer, nullable=False),
        sa.Column("output_tokens", sa.Integer, nullable=False),
        sa.Column("total_tokens", sa.Integer, nullable=False),
        sa.Column("cost", sa.Numeric(18, 8), nullable=False),
        sa.Column("tools_used", sa.JSON, nullable=False),
        sa.Column("tools_failed", sa.JSON, nullable=False),
        sa.Column("succeeded", sa.Boolean),
        sa.Column("answer", sa.Text),
        sa.Column("error", sa.Text),
        sa.PrimaryKeyConstraint("execution_id", name=op.f("pk_executions")),
        sa.CheckConstraint(
            _in("status", "running", "awaiting_approval", "succeeded", "failed", "terminated"),
            name=op.f("ck_executions_status"),
        ),
    )
    op.create_index(op.f("ix_executions_thread_id"), "executions", ["thread_id"])
    op.create_index(op.f("ix_executions_user_id"), "executions", ["user_id"])
    op.create_index(op.f("ix_executions_started_at"), "executions", ["started_at"])

    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("ts", _TS, nullable=False),
        sa.Column("execution_id", sa.String(64), nullable=False),
        sa.Column("thread_id", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("role", sa.String(64), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("tool", sa.String(128)),
        sa.Column("tool_call_id", sa.String(128)),
        sa.Column("decision", sa.String(32)),
        sa.Column("rule", sa.Text),
        sa.Column("resource", sa.Text),
        sa.Column("args", sa.JSON),
        sa.Column("status", sa.String(32)),
        sa.Column("result_digest", sa.String(128)),
        sa.Column("duration_ms", sa.Integer),
        sa.Column("detail", sa.Text),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit")),
    )
    op.create_index(op.f("ix_audit_execution_id"), "audit", ["execution_id"])
    op.create_index(op.f("ix_audit_thread_id"), "audit", ["thread_id"])

    op.create_table(
        "approvals",
        sa.Column("approval_id", sa.String(64), nullable=False),
        sa.Column("thread_id", sa.String(128), nullable=False),
        sa.Column("execution_id", sa.String(64), nullable=False),
        sa.Column("tool_call_id", sa.String(128), nullable=False),
        sa.Column("tool", sa.String(128), nullable=False),
        sa.Column("args", sa.JSON, nullable=False),
        sa.Column("args_hash", sa.String(128), nullable=False),
        sa.Column("resource", sa.Text),
        sa.Column("rule", sa.Text),
        sa.Column("requester", sa.String(128), nullable=False),
        sa.Column("role", sa.String(64), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("decided_by", sa.String(128)),
        sa.Column("decided_at", _TS),
        sa.Column("decision_reason", sa.Text),
        sa.Column("edited_args", sa.JSON),
        sa.PrimaryKeyConstraint("approval_id", name=op.f("pk_approvals")),
        sa.UniqueConstraint("thread_id", "tool_call_id", name=op.f("uq_approvals_thread_id_tool_call_id")),
        sa.CheckConstraint(
            _in("status", "pending", "approved", "edited", "rejected", "expired"),
            name=op.f("ck_approvals_status"),
        ),
    )
    op.create_index(op.f("ix_approvals_requester"), "approvals", ["requester"])
    op.create_index(op.f("ix_approvals_status"), "approvals", ["status"])

    op.create_table(
        "tool_results",
        sa.Column("thread_id", sa.String(128), nullable=False),
        sa.Column("tool_call_id", sa.String(128), nullable=False),
        sa.Column("execution_id", sa.String(64), nullable=False),
        sa.Column("tool", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("output", sa.Text, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("thread_id", "tool_call_id", name=op.f("pk_tool_results")),
        sa.CheckConstraint(_in("status", "ok", "error", "timeout"), name=op.f("ck_tool_results_status")),
    )

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("thread_id", sa.String(128), nullable=False),
        sa.Column("tool_call_id", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("recipient", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("thread_id", "tool_call_id", name=op.f("uq_outbox_thread_id_tool_call_id")),
    )
    op.create_index(op.f("ix_outbox_user_id"), "outbox", ["user_id"])


def downgrade() -> None:
    for table in ("outbox", "tool_results", "approvals", "audit", "executions"):
        op.drop_table(table)
