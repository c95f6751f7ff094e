"""budget ledger: per-user monthly limits, month accounts and reservation entries

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)
_USD = sa.Numeric(18, 8)


def _in(column: str, *values: str) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "budget_limits",
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("monthly_usd", _USD, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_budget_limits")),
        sa.CheckConstraint("monthly_usd >= 0", name=op.f("ck_budget_limits_monthly_usd_nonnegative")),
    )
    op.create_table(
        "budget_months",
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("spent", _USD, nullable=False),
        sa.Column("reserved", _USD, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("user_id", "month", name=op.f("pk_budget_months")),
    )
    op.create_table(
        "budget_entries",
        sa.Column("reservation_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("thread_id", sa.String(128), nullable=False),
        sa.Column("execution_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("estimate", _USD, nullable=False),
        sa.Column("actual", _USD),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("closed_at", _TS),
        sa.PrimaryKeyConstraint("reservation_id", name=op.f("pk_budget_entries")),
        sa.CheckConstraint(_in("kind", "model", "tool"), name=op.f("ck_budget_entries_kind")),
        sa.CheckConstraint(
            _in("status", "reserved", "settled", "released"), name=op.f("ck_budget_entries_status")
        ),
    )
    op.create_index(op.f("ix_budget_entries_user_id_month"), "budget_entries", ["user_id", "month"])
    op.create_index(op.f("ix_budget_entries_execution_id"), "budget_entries", ["execution_id"])


def downgrade() -> None:
    for table in ("budget_entries", "budget_months", "budget_limits"):
        op.drop_table(table)
