"""audit chain: prev_hash/row_hash on every audit row, and triggers that keep the table append-only

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26

Existing rows are chained in id order before the triggers are created. PostgreSQL refuses UPDATE,
DELETE and TRUNCATE on `audit`; SQLite refuses UPDATE and DELETE (it has no TRUNCATE).
Note for later migrations: SQLite batch operations recreate the table, which drops its triggers;
create them again (`_create_sqlite_triggers`).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from keel import audit_chain
from keel.records.tables import audit

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION keel_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$
"""
_PG_TRIGGERS = (
    "CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit "
    "FOR EACH ROW EXECUTE FUNCTION keel_audit_append_only()",
    "CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit "
    "FOR EACH STATEMENT EXECUTE FUNCTION keel_audit_append_only()",
)
_SQLITE_TRIGGERS = {
    "audit_no_update": "UPDATE",
    "audit_no_delete": "DELETE",
}


def _create_sqlite_triggers() -> None:
    for name, op_name in _SQLITE_TRIGGERS.items():
        op.execute(
            f"CREATE TRIGGER {name} BEFORE {op_name} ON audit "
            f"BEGIN SELECT RAISE(ABORT, 'audit is append-only: {op_name} refused'); END"
        )


# The audit columns as of this revision: later ones (0005's `approver`) do not exist yet here, and a
# missing field hashes like NULL (left out), so rows chained now stay valid once they are added.
_FIELDS_AT_0003 = tuple(name for name in audit_chain.HASHED_FIELDS if name != "approver")


def _chain_existing_rows() -> None:
    bind = op.get_bind()
    cols = [audit.c[name] for name in _FIELDS_AT_0003]
    rows = bind.execute(sa.select(audit.c.id, *cols).order_by(audit.c.id)).all()
    prev = audit_chain.GENESIS
    for row in rows:
        values = {name: getattr(row, name) for name in _FIELDS_AT_0003}
        digest = audit_chain.row_hash(prev, values)
        bind.execute(sa.update(audit).where(audit.c.id == row.id).values(prev_hash=prev, row_hash=digest))
        prev = digest


def upgrade() -> None:
    # NOT NULL from the start (SQLite cannot add the constraint later without rebuilding the table);
    # the empty default only exists so that old rows can be added to, and is filled in just below.
    for name in ("prev_hash", "row_hash"):
        op.add_column("audit", sa.Column(name, sa.String(64), nullable=False, server_default=""))
    _chain_existing_rows()
    if op.get_bind().dialect.name == "postgresql":
        for name in ("prev_hash", "row_hash"):
            op.alter_column("audit", name, server_default=None)
        op.execute(_PG_FUNCTION)
        for statement in _PG_TRIGGERS:
            op.execute(statement)
    else:
        _create_sqlite_triggers()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_no_truncate ON audit")
        op.execute("DROP TRIGGER IF EXISTS audit_append_only ON audit")
        op.execute("DROP FUNCTION IF EXISTS keel_audit_append_only()")
    else:
        for name in _SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    with op.batch_alter_table("audit") as batch:
        batch.drop_column("row_hash")
        batch.drop_column("prev_hash")
