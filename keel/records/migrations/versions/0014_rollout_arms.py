"""rollout_arms: each arm's weight override and stop, shared by every process (the rollout file says the
arms; what an operator or a guard rail changed since lives here)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "rollout_arms",
        sa.Column("rollout", sa.String(128), nullable=False),
        sa.Column("arm", sa.String(64), nullable=False),
        sa.Column("weight", sa.Float),
        sa.Column("stopped_at", _TS),
        sa.Column("stopped_by", sa.String(128)),
        sa.Column("stop_reason", sa.Text),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("rollout", "arm", name=op.f("pk_rollout_arms")),
    )


def downgrade() -> None:
    op.drop_table("rollout_arms")
