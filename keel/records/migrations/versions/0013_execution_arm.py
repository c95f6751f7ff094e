"""executions.arm: the rollout arm an execution ran in (NULL: no rollout was in force)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04

The A/B report and the rollout guard rails group executions by arm over a time window: the index serves
"this arm's executions since T" without reading other arms' rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("executions", sa.Column("arm", sa.String(64), nullable=True))
    op.create_index(op.f("ix_executions_arm_started_at"), "executions", ["arm", "started_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_executions_arm_started_at"), table_name="executions")
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("arm")
