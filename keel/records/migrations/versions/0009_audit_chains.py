"""audit chains: one hash chain per thread, each sealed by its head in `audit_heads`

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

Appends no longer queue behind one lock shared by every run: each thread's rows are a chain
(`audit.chain`, `keel.audit_chain.chain_of(thread_id)`) and appends lock only their chain's head row.
Rows appended before keep `chain` NULL: they are the old single chain, in id order, and this migration
seals it with the head `LEGACY_CHAIN` (its row count, last id and last row_hash), so deleting its last
rows is caught from now on. No audit row is rewritten (the append-only triggers stay in place).
Triggers refuse DELETE of a head and an UPDATE that lowers its row count or moves it to another chain.

Downgrade refuses while any row is in a thread chain: 0008's verification reads one chain only.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from keel.audit_chain import LEGACY_CHAIN

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_HEADS_GUARD = "NEW.row_count < OLD.row_count OR NEW.chain <> OLD.chain"
_PG = (
    """
    CREATE OR REPLACE FUNCTION keel_audit_heads_guard() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit_heads only move forward: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END
    $$
    """,
    "CREATE TRIGGER audit_heads_no_delete BEFORE DELETE ON audit_heads "
    "FOR EACH ROW EXECUTE FUNCTION keel_audit_heads_guard()",
    "CREATE TRIGGER audit_heads_no_truncate BEFORE TRUNCATE ON audit_heads "
    "FOR EACH STATEMENT EXECUTE FUNCTION keel_audit_heads_guard()",
    f"CREATE TRIGGER audit_heads_forward BEFORE UPDATE ON audit_heads "
    f"FOR EACH ROW WHEN ({_HEADS_GUARD}) EXECUTE FUNCTION keel_audit_heads_guard()",
)
_SQLITE = (
    "CREATE TRIGGER audit_heads_no_delete BEFORE DELETE ON audit_heads "
    "BEGIN SELECT RAISE(ABORT, 'audit_heads only move forward: DELETE refused'); END",
    f"CREATE TRIGGER audit_heads_forward BEFORE UPDATE ON audit_heads WHEN {_HEADS_GUARD} "
    "BEGIN SELECT RAISE(ABORT, 'audit_heads only move forward: UPDATE refused'); END",
)


def upgrade() -> None:
    op.add_column("audit", sa.Column("chain", sa.BigInteger))  # nullable: no existing row is touched
    op.create_index(op.f("ix_audit_chain_id"), "audit", ["chain", "id"])
    heads = op.create_table(
        "audit_heads",
        sa.Column("chain", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("row_count", sa.BigInteger, nullable=False),
        sa.Column("last_id", sa.Integer),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("chain", name=op.f("pk_audit_heads")),
    )
    bind = op.get_bind()
    legacy = bind.execute(sa.text("SELECT count(*), max(id) FROM audit")).one()
    if legacy[0]:
        last = bind.execute(sa.text("SELECT row_hash FROM audit WHERE id = :id"), {"id": legacy[1]}).scalar()
        op.bulk_insert(
            heads, [{"chain": LEGACY_CHAIN, "row_count": legacy[0], "last_id": legacy[1], "head_hash": last}]
        )
    for statement in _PG if bind.dialect.name == "postgresql" else _SQLITE:
        op.execute(statement)


def downgrade() -> None:
    bind = op.get_bind()
    chained = bind.execute(sa.text("SELECT count(*) FROM audit WHERE chain IS NOT NULL")).scalar()
    if chained:
        raise RuntimeError(f"cannot downgrade below 0009: {chained} audit rows are in per-thread chains")
    op.drop_table("audit_heads")  # its triggers go with it
    if bind.dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS keel_audit_heads_guard()")
    op.drop_index(op.f("ix_audit_chain_id"), "audit")
    op.drop_column("audit", "chain")  # SQLite >= 3.35 drops it in place, keeping the audit triggers
