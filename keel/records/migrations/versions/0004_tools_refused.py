"""executions.tools_refused: calls refused (invalid, denied, rejected, expired) apart from tools that failed

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25

Until now refusals were counted in tools_failed, which made policy denials look like tool outages in
health figures. Existing rows keep what they recorded; new rows separate the two.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "executions",
        sa.Column("tools_refused", sa.JSON(), nullable=False, server_default=sa.text("'[]'")),
    )


def downgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("tools_refused")
