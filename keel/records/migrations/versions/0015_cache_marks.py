"""Cache marks: executions.cached_model_calls and tool_results.cached

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04

A model answer served from the response cache costs nothing and is counted in its execution's
`cached_model_calls`; a `read` tool's result served from the tool result cache is a tool_results row with
`cached` true (its audit row says so in `detail`). `keel cache stats` counts both from here, so every
process sees the same figures.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "executions",
        sa.Column("cached_model_calls", sa.Integer, nullable=False, server_default=sa.text("0")),
    )
    op.add_column(
        "tool_results",
        sa.Column("cached", sa.Boolean, nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    with op.batch_alter_table("tool_results") as batch:
        batch.drop_column("cached")
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("cached_model_calls")
