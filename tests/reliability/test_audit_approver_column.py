"""Migration 0005's `approver` column: rows chained before it stay valid, and the chain covers it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from keel.audit_chain import GENESIS, normalise, row_hash
from keel.records import AuditEvent, Records, migrate, tables

PG_ADMIN = "postgresql://127.0.0.1:5432/postgres"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new, empty database of one backend, only this test's (the test tampers with its audit log)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'records.sqlite'}"
        return
    name = f"keel_approver_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield "postgresql+psycopg://" + PG_ADMIN.split("://", 1)[1].rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _event(i: int, **kw) -> AuditEvent:
    base = {"execution_id": "ex", "thread_id": "th", "user_id": "alice", "role": "user", "tenant": "acme"}
    return AuditEvent(**{**base, "event": "tool_call", "tool": f"t{i}", **kw})


async def test_rows_from_before_0005_stay_valid_and_the_approver_is_hashed(db_url: str) -> None:
    rec = Records.from_url(db_url)
    # The audit table as 0004 left it: no approver column (nor 0009's chain).
    later = ("approver", "chain")
    old = sa.Table("audit", sa.MetaData(), *[c._copy() for c in tables.audit.columns if c.name not in later])
    try:
        async with rec.transaction() as conn:
            await migrate.upgrade(conn, "0004")
            prev = GENESIS
            for i in range(2):
                ev = _event(i)
                values = normalise({f.name: getattr(ev, f.name) for f in fields(ev)})
                values.pop("approver")
                digest = row_hash(prev, values)
                await conn.execute(sa.insert(old).values(**values, prev_hash=prev, row_hash=digest))
                prev = digest
        await rec.setup()  # to head: 0005 adds the column
        decided = await rec.append_audit(_event(2, event="approval_decision", approver="ops"))
        report = await rec.verify_audit()
        assert report.ok and report.rows == 3
        assert [r.approver for r in await rec.tail_audit()] == [None, None, "ops"]
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            async with rec.transaction() as conn:
                await conn.execute(sa.text("UPDATE audit SET approver = 'mallory'"))
        async with rec.transaction() as conn:  # someone with full rights rewrites who approved
            if rec.engine.dialect.name == "postgresql":
                await conn.execute(sa.text("ALTER TABLE audit DISABLE TRIGGER audit_append_only"))
            else:
                await conn.execute(sa.text("DROP TRIGGER audit_no_update"))
            await conn.execute(sa.text(f"UPDATE audit SET approver = 'mallory' WHERE id = {decided}"))
        broken = (await rec.verify_audit()).broken
        assert broken is not None and broken.row_id == decided and "changed" in broken.reason
    finally:
        await rec.close()
