"""executions.heartbeat_at and the `interrupted` status: a run whose process died is found and resumed

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04

A running execution renews `heartbeat_at` while its process lives; the stale-run sweep marks one whose
lease expired `interrupted` (it was left `running` forever before). Existing rows get no heartbeat:
the sweep falls back to `started_at` for them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD = ("running", "awaiting_approval", "succeeded", "failed", "terminated")
_NEW = (*_OLD, "interrupted")


def _in(values: tuple[str, ...]) -> str:
    return f"status IN ({', '.join(repr(v) for v in values)})"


def _statuses(values: tuple[str, ...]) -> None:
    with op.batch_alter_table("executions") as batch:  # SQLite: the table is copied with the new check
        batch.drop_constraint(op.f("ck_executions_status"), type_="check")
        batch.create_check_constraint(op.f("ck_executions_status"), _in(values))


def upgrade() -> None:
    op.add_column("executions", sa.Column("heartbeat_at", sa.DateTime(timezone=True)))
    _statuses(_NEW)
    op.create_index(op.f("ix_executions_status"), "executions", ["status"])


def downgrade() -> None:
    op.drop_index(op.f("ix_executions_status"), table_name="executions")
    op.execute("UPDATE executions SET status = 'failed' WHERE status = 'interrupted'")
    _statuses(_OLD)
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("heartbeat_at")
