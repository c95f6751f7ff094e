"""budget_entries.overrun: a settlement whose actual cost passed the reservation's bound

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04

A provider that ignores `max_tokens` can report more usage than a reservation held. keel charges the
truth and marks the entry, so an overdrawn month can be traced to the calls that overran.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "budget_entries",
        sa.Column("overrun", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    with op.batch_alter_table("budget_entries") as batch:
        batch.drop_column("overrun")
