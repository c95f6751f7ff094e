"""The budget ledger's tables (SQLAlchemy Core), created by migration 0002 in the records database."""

from __future__ import annotations

import sqlalchemy as sa

from keel.records.tables import UTCDateTime, metadata

__all__ = ["budget_limits", "budget_months", "budget_entries"]

_USD = sa.Numeric(18, 8, asdecimal=True)

budget_limits = sa.Table(
    "budget_limits",
    metadata,
    sa.Column("user_id", sa.String(128), primary_key=True),
    sa.Column("monthly_usd", _USD, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)
"""A user's monthly limit; users without a row get the `budget_default_usd` setting."""

budget_months = sa.Table(
    "budget_months",
    metadata,
    sa.Column("user_id", sa.String(128), primary_key=True),
    sa.Column("month", sa.String(7), primary_key=True),
    sa.Column("spent", _USD, nullable=False),
    sa.Column("reserved", _USD, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)
"""One row per user and UTC month; a reservation adds to it only where it fits (keel/budget/statements.py)."""

budget_entries = sa.Table(
    "budget_entries",
    metadata,
    sa.Column("reservation_id", sa.String(64), primary_key=True),
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
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("closed_at", UTCDateTime),
    sa.Column("overrun", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index("ix_budget_entries_user_id_month", "user_id", "month"),
    sa.Index("ix_budget_entries_execution_id", "execution_id"),
)
"""Every reservation and how it ended: settled to its actual cost, or released. `overrun` marks a
settlement whose actual cost passed the reserved bound (migration 0006)."""
