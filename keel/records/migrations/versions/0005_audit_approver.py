"""audit.approver: who decided, or tried and was refused to decide, an approval, in its own column

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04

Nullable, and covered by the hash chain: `keel.audit_chain.canonical` leaves NULL fields out, so rows
chained before this column existed keep their hashes. A plain ADD COLUMN (no batch rebuild on SQLite),
so the append-only triggers of 0003 stay in place.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("audit", sa.Column("approver", sa.String(128), nullable=True))


_SQLITE_TRIGGERS = {"audit_no_update": "UPDATE", "audit_no_delete": "DELETE"}
"""0003's append-only triggers, copied: a SQLite batch rebuild drops them."""


def downgrade() -> None:
    with op.batch_alter_table("audit") as batch:
        batch.drop_column("approver")
    if op.get_bind().dialect.name == "sqlite":
        for name, op_name in _SQLITE_TRIGGERS.items():
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
            op.execute(
                f"CREATE TRIGGER {name} BEFORE {op_name} ON audit "
                f"BEGIN SELECT RAISE(ABORT, 'audit is append-only: {op_name} refused'); END"
            )
