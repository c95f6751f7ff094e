"""agent_versions: one row per agent version a process started with (its id, name and manifest)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04

An agent version is the bundle a run's behaviour depends on (prompt, model chain, toolset, policy, prices,
limits), named `<name>@<content hash>` (keel.app.versions). Each process inserts its own at start if absent;
executions name it in their `version` column, so `keel versions list|show` can say what ran and what changed.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agent_versions",
        sa.Column("version_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("manifest", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("version_id", name=op.f("pk_agent_versions")),
    )


def downgrade() -> None:
    op.drop_table("agent_versions")
