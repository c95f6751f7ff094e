"""tool_results.status: the structured tool outcome (refused, invalid, failed) instead of one `error`

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06

A replayed result keeps the status it was recorded with, so a refusal replays as a refusal and is not
counted as a tool failure. Rows recorded before keep `error` (read as `failed`).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD = ("ok", "error", "timeout")
_NEW = (*_OLD, "refused", "invalid", "failed")


def _in(values: tuple[str, ...]) -> str:
    return f"status IN ({', '.join(repr(v) for v in values)})"


def _statuses(values: tuple[str, ...]) -> None:
    with op.batch_alter_table("tool_results") as batch:  # SQLite: the table is copied with the new check
        batch.drop_constraint(op.f("ck_tool_results_status"), type_="check")
        batch.create_check_constraint(op.f("ck_tool_results_status"), _in(values))


def upgrade() -> None:
    _statuses(_NEW)


def downgrade() -> None:
    op.execute("UPDATE tool_results SET status = 'error' WHERE status IN ('refused', 'invalid', 'failed')")
    _statuses(_OLD)
