"""The tamper-evident audit log: hash-chained rows, append-only in the database, `keel audit verify`."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from keel.audit_chain import GENESIS, HASHED_FIELDS, LEGACY_CHAIN, chain_of, normalise, row_hash, seal
from keel.cli import app
from keel.records import AuditEvent, AuditHead, Records, migrate
from keel.records.tables import audit

PG_ADMIN = os.environ.get("KEEL_TEST_PG_ADMIN", "postgresql://127.0.0.1:5432/postgres")
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture
def fresh_db(request: pytest.FixtureRequest, tmp_path: Path):
    """A URL of a new, empty database of one backend (PostgreSQL: created here, dropped after)."""
    created: list[str] = []

    def make(backend: str) -> str:
        if backend == "sqlite":
            return f"sqlite+aiosqlite:///{tmp_path / f'{uuid.uuid4().hex[:6]}.sqlite'}"
        name = f"keel_chain_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return "postgresql+psycopg://" + PG_ADMIN.split("://", 1)[1].rsplit("/", 1)[0] + f"/{name}"

    yield make
    if created:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            for name in created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
async def records(request: pytest.FixtureRequest, fresh_db) -> AsyncIterator[Records]:
    rec = Records.from_url(fresh_db(request.param))
    await rec.setup()
    yield rec
    await rec.close()


def event(i: int = 0, **kw) -> AuditEvent:
    base = dict(execution_id="ex-1", thread_id="th-1", user_id="alice", role="user", tenant="acme")
    return AuditEvent(**{**base, "event": "tool_call", "tool": f"t{i}", **kw})


async def verify(records: Records):
    return await records.verify_audit(page_size=3)


async def superuser(records: Records, *statements: str) -> None:
    """Tamper the way someone with full database rights can: with the append-only triggers off."""
    async with records.transaction() as conn:
        if records.engine.dialect.name == "postgresql":
            await conn.execute(sa.text("ALTER TABLE audit DISABLE TRIGGER audit_append_only"))
        else:
            await conn.execute(sa.text("DROP TRIGGER audit_no_update"))
            await conn.execute(sa.text("DROP TRIGGER audit_no_delete"))
        for statement in statements:
            await conn.execute(sa.text(statement))
        if records.engine.dialect.name == "postgresql":
            await conn.execute(sa.text("ALTER TABLE audit ENABLE TRIGGER audit_append_only"))


async def test_rows_are_chained_and_verify(records: Records) -> None:
    assert (await verify(records)).describe().startswith("audit chain ok: 0 rows")
    ts = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    await records.append_audit(event(0, ts=ts, args={"path": "é/ü", "n": [1, 2.5, None], "t": (1, 2)}))
    for i in range(1, 7):
        await records.append_audit(event(i, decision="allow", duration_ms=i, detail="x" * i))
    rows = await records.tail_audit(100)
    assert rows[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.row_hash for a, b in zip(rows, rows[1:], strict=False))
    assert rows[0].args == {"path": "é/ü", "n": [1, 2.5, None], "t": [1, 2]} and rows[0].ts == ts
    report = await verify(records)
    head = AuditHead(chain=chain_of("th-1"), row_count=7, last_id=rows[-1].id, head_hash=rows[-1].row_hash)
    assert report.ok and report.rows == 7 and report.chains == 1 and report.head == seal([head])
    assert report.last_id == rows[-1].id and {r.chain for r in rows} == {chain_of("th-1")}


async def test_update_delete_and_truncate_are_refused_by_the_database(records: Records) -> None:
    await records.append_audit(event(1))
    statements = ["UPDATE audit SET detail = 'covered up'", "DELETE FROM audit"]
    if records.engine.dialect.name == "postgresql":
        statements.append("TRUNCATE audit")
    for statement in statements:
        with pytest.raises(sa.exc.DBAPIError, match="audit is append-only"):
            async with records.transaction() as conn:
                await conn.execute(sa.text(statement))
    (row,) = await records.tail_audit()
    assert row.detail is None and (await verify(records)).ok


async def test_verify_catches_a_superuser_edit(records: Records) -> None:
    ids = [await records.append_audit(event(i, decision="deny")) for i in range(5)]
    await superuser(records, f"UPDATE audit SET decision = 'allow' WHERE id = {ids[2]}")
    report = await verify(records)
    assert not report.ok and report.broken.row_id == ids[2]
    assert "changed" in report.broken.reason and report.rows == 2


async def test_verify_catches_a_deleted_row(records: Records) -> None:
    ids = [await records.append_audit(event(i)) for i in range(5)]
    await superuser(records, f"DELETE FROM audit WHERE id = {ids[1]}")
    report = await verify(records)
    assert (report.ok, report.broken.row_id) == (False, ids[2])
    assert f"does not match row {ids[0]}" in report.broken.reason and "deleted" in report.broken.reason


async def test_verify_catches_a_rewritten_row_whose_own_hash_was_recomputed(records: Records) -> None:
    ids = [await records.append_audit(event(i)) for i in range(4)]
    (row,) = [r for r in await records.tail_audit() if r.id == ids[1]]
    forged = row_hash(row.prev_hash, {**row.as_dict(), "ts": row.ts, "tool": "forged"})
    await superuser(records, f"UPDATE audit SET tool = 'forged', row_hash = '{forged}' WHERE id = {ids[1]}")
    report = await verify(records)
    assert report.broken.row_id == ids[2] and "prev_hash" in report.broken.reason


async def test_concurrent_appends_from_two_engines_keep_one_linear_chain(records: Records) -> None:
    other = Records.from_url(records.engine.url.render_as_string(hide_password=False))
    try:

        async def writer(rec: Records, tag: str) -> None:
            for i in range(15):
                async with rec.transaction() as conn:  # a multi-row transaction, like a tool's
                    await rec.append_audit(event(i, detail=f"{tag}-a"), conn=conn)
                    await asyncio.sleep(0)
                    await rec.append_audit(event(i, detail=f"{tag}-b"), conn=conn)

        await asyncio.gather(*(writer(r, t) for r, t in [(records, "x"), (other, "y"), (records, "z")]))
    finally:
        await other.close()
    report = await verify(records)
    assert report.ok and report.rows == 90


async def test_upgrade_chains_rows_written_before_the_chain_existed(fresh_db) -> None:
    rec = Records.from_url(fresh_db("sqlite"))
    try:
        async with rec.transaction() as conn:
            await migrate.upgrade(conn, "0002")
            for i in range(3):
                await conn.execute(
                    sa.text(
                        "INSERT INTO audit (ts, execution_id, thread_id, user_id, role, tenant, event, tool) "
                        f"VALUES ('2026-01-01 00:00:0{i}.000000', 'ex', 'th', 'alice', 'user', 'acme', "
                        f"'tool_call', 't{i}')"
                    )
                )
        await rec.setup()
        await rec.append_audit(event(9))
        report = await verify(rec)
        assert report.ok and report.rows == 4
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            async with rec.transaction() as conn:
                await conn.execute(sa.text("DELETE FROM audit"))
    finally:
        await rec.close()


async def test_keel_audit_verify_cli(tmp_path: Path) -> None:
    home = tmp_path / "home"
    rec = Records.from_url(f"sqlite+aiosqlite:///{(home / 'records.sqlite').resolve()}")
    await rec.setup()
    ids = [await rec.append_audit(event(i)) for i in range(3)]
    runner, env = CliRunner(), {"KEEL_HOME": str(home), "COLUMNS": "200"}
    good = await asyncio.to_thread(runner.invoke, app, ["audit", "verify"], env=env)
    assert good.exit_code == 0 and "audit chain ok: 3 rows" in good.stdout
    await superuser(rec, f"DELETE FROM audit WHERE id = {ids[0]}")
    await rec.close()
    bad = await asyncio.to_thread(runner.invoke, app, ["audit", "verify"], env=env)
    assert bad.exit_code == 1
    assert f"audit chain broken at row {ids[1]}: prev_hash does not match the start of its chain" in " ".join(
        bad.stderr.split()
    )
    as_json = await asyncio.to_thread(runner.invoke, app, ["audit", "verify", "--json"], env=env)
    assert as_json.exit_code == 1 and f'"bad_row": {ids[1]}' in as_json.stdout


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("args", """'{"to": "attacker@evil.test"}'"""),
        ("detail", "'nothing to see'"),
        ("resource", "'shared:other'"),
        ("decision", "'allow'"),
        ("rule", "'admin * * allow'"),
        ("user_id", "'mallory'"),
    ],
)
async def test_verify_catches_an_edit_of_any_hashed_column(records: Records, column: str, value: str) -> None:
    """Every column an audit row is appended with is covered by its hash, args/detail/resource included."""
    base = dict(args={"to": "bob@example.com"}, detail="sent", resource="outbox", decision="deny", rule="r1")
    ids = [await records.append_audit(event(i, **base)) for i in range(3)]
    await superuser(records, f"UPDATE audit SET {column} = {value} WHERE id = {ids[1]}")
    report = await verify(records)
    assert (report.ok, report.broken.row_id) == (False, ids[1]) and "changed" in report.broken.reason


# -- per-thread chains sealed by their heads (migration 0009) ------------------------------------


async def superuser_heads(records: Records, *statements: str) -> None:
    """Tamper with the heads the way someone with full database rights can: their triggers off."""
    async with records.transaction() as conn:
        pg = records.engine.dialect.name == "postgresql"
        for trigger in ("audit_heads_no_delete", "audit_heads_forward"):
            off = f"ALTER TABLE audit_heads DISABLE TRIGGER {trigger}" if pg else f"DROP TRIGGER {trigger}"
            await conn.execute(sa.text(off))
        for statement in statements:
            await conn.execute(sa.text(statement))
        if pg:
            await conn.execute(sa.text("ALTER TABLE audit_heads ENABLE TRIGGER ALL"))


async def test_a_multi_row_append_is_chained_in_order_within_each_thread(records: Records) -> None:
    events = [event(0), event(1, thread_id="th-2"), event(2), event(3), event(4, thread_id="th-2")]
    ids = await records.append_audit_many(events)
    rows = {r.id: r for r in await records.tail_audit(100)}
    assert [rows[i].tool for i in ids] == ["t0", "t1", "t2", "t3", "t4"]  # ids in the order given
    one, two = [ids[0], ids[2], ids[3]], [ids[1], ids[4]]
    for chain in (one, two):
        assert chain == sorted(chain) and rows[chain[0]].prev_hash == GENESIS
        assert all(rows[b].prev_hash == rows[a].row_hash for a, b in zip(chain, chain[1:], strict=False))
    assert {rows[i].chain for i in one} == {chain_of("th-1")} and {rows[i].chain for i in two} == {
        chain_of("th-2")
    }
    more = await records.append_audit_many([event(5), event(6)])  # continues behind the head
    assert (await records.tail_audit(100))[-2].prev_hash == rows[ids[3]].row_hash
    report = await verify(records)
    assert report.ok and (report.rows, report.chains, report.last_id) == (7, 2, max(more))


async def test_a_multi_row_append_rolls_back_with_the_callers_transaction(records: Records) -> None:
    await records.append_audit(event(0))
    with pytest.raises(RuntimeError, match="crash"):
        async with records.transaction() as conn:
            await records.append_audit_many([event(1), event(2, thread_id="th-new")], conn=conn)
            raise RuntimeError("crash")
    assert [r.tool for r in await records.tail_audit()] == ["t0"]
    report = await verify(records)  # neither head moved: a new thread's head is rolled back too
    assert report.ok and (report.rows, report.chains) == (1, 1)
    await records.append_audit_many([event(3), event(4, thread_id="th-new")])
    assert (await verify(records)).ok


async def test_verify_catches_a_deleted_last_row_of_one_chain(records: Records) -> None:
    ids = await records.append_audit_many([event(i, thread_id=f"th-{i % 2}") for i in range(6)])
    await superuser(records, f"DELETE FROM audit WHERE id = {ids[-1]}")  # th-1's last row
    report = await verify(records)
    assert (report.ok, report.broken.row_id) == (False, ids[-1])
    assert f"ends at row {ids[-3]} after 2 rows" in report.broken.reason
    assert "rows at its end were deleted" in report.broken.reason


async def test_verify_catches_a_chain_whose_rows_were_all_deleted(records: Records) -> None:
    ids = await records.append_audit_many([event(0, thread_id="th-a"), event(1, thread_id="th-b")])
    await superuser(records, f"DELETE FROM audit WHERE id = {ids[1]}")
    report = await verify(records)
    assert (report.ok, report.broken.row_id) == (False, ids[1]) and "but no rows" in report.broken.reason


async def test_verify_catches_a_row_inserted_at_a_chains_end_with_a_valid_link(records: Records) -> None:
    await records.append_audit_many([event(i) for i in range(3)])
    last = (await records.tail_audit())[-1]
    values = {**last.as_dict(), "ts": last.ts, "tool": "forged"}
    forged = row_hash(last.row_hash, values)
    await superuser(
        records,
        "INSERT INTO audit (ts, execution_id, thread_id, user_id, role, tenant, event, tool, chain, "
        f"prev_hash, row_hash) SELECT ts, execution_id, thread_id, user_id, role, tenant, event, 'forged', "
        f"chain, '{last.row_hash}', '{forged}' FROM audit WHERE id = {last.id}",
    )
    report = await verify(records)
    assert not report.ok and report.broken.row_id > last.id
    assert "inserted at the chain's end" in report.broken.reason


async def test_verify_catches_rows_of_a_chain_without_a_head(records: Records) -> None:
    await records.append_audit(event(0))
    await superuser(
        records,
        "INSERT INTO audit (ts, execution_id, thread_id, user_id, role, tenant, event, chain, prev_hash, "
        f"row_hash) SELECT ts, execution_id, 'th-x', user_id, role, tenant, event, {chain_of('th-x')}, "
        f"'{GENESIS}', row_hash FROM audit",
    )
    report = await verify(records)
    assert not report.ok and "has no sealed head" in report.broken.reason


async def test_verify_catches_a_changed_or_deleted_head(records: Records) -> None:
    ids = await records.append_audit_many([event(0), event(1), event(2, thread_id="th-2")])
    chain = chain_of("th-1")
    async with records.transaction() as conn:  # a head may move forward (appends do): no trigger stops it
        await conn.execute(sa.text(f"UPDATE audit_heads SET head_hash = '{GENESIS}' WHERE chain = {chain}"))
    report = await verify(records)
    assert (report.ok, report.broken.row_id) == (False, ids[1]) and "sealed head" in report.broken.reason
    await superuser_heads(records, f"DELETE FROM audit_heads WHERE chain = {chain}")
    report = await verify(records)
    assert (report.ok, report.broken.row_id) == (False, ids[0]) and "no sealed head" in report.broken.reason


async def test_heads_only_move_forward_in_the_database(records: Records) -> None:
    await records.append_audit_many([event(0), event(1)])
    statements = ["DELETE FROM audit_heads", "UPDATE audit_heads SET row_count = row_count - 1"]
    if records.engine.dialect.name == "postgresql":
        statements.append("TRUNCATE audit_heads")
    for statement in statements:
        with pytest.raises(sa.exc.DBAPIError, match="audit_heads only move forward"):
            async with records.transaction() as conn:
                await conn.execute(sa.text(statement))
    report = await verify(records)
    assert report.ok and report.rows == 2


@pytest.mark.parametrize("backend", BACKENDS)
async def test_rows_from_before_0009_verify_as_the_sealed_legacy_chain(fresh_db, backend: str) -> None:
    rec = Records.from_url(fresh_db(backend))
    old = sa.Table("audit", sa.MetaData(), *[c._copy() for c in audit.columns if c.name != "chain"])
    try:
        async with rec.transaction() as conn:  # the log as 0008 wrote it: one chain over every thread
            await migrate.upgrade(conn, "0008")
            prev = GENESIS
            for i in range(3):
                ev = event(i, thread_id=f"th-{i % 2}")
                values = normalise({name: getattr(ev, name) for name in HASHED_FIELDS})
                digest = row_hash(prev, values)
                await conn.execute(sa.insert(old).values(**values, prev_hash=prev, row_hash=digest))
                prev = digest
        await rec.setup()  # 0009 seals them as the legacy chain
        await rec.append_audit_many([event(3, thread_id="th-0"), event(4, thread_id="th-0")])
        rows = await rec.tail_audit()
        assert [r.chain for r in rows] == [None, None, None, chain_of("th-0"), chain_of("th-0")]
        assert rows[3].prev_hash == GENESIS  # the thread's own chain starts afresh
        report = await verify(rec)
        assert report.ok and (report.rows, report.chains) == (5, 2)
        await superuser(rec, f"DELETE FROM audit WHERE id = {rows[2].id}")  # the legacy chain's last row
        report = await verify(rec)
        assert (report.ok, report.broken.row_id) == (False, rows[2].id)
        assert f"chain {LEGACY_CHAIN} ends at row {rows[1].id}" in report.broken.reason
    finally:
        await rec.close()


async def test_downgrade_below_0009_keeps_the_audit_triggers_and_refuses_over_chained_rows(
    records: Records,
) -> None:
    from alembic import command

    async def downgrade(conn: sa.ext.asyncio.AsyncConnection) -> None:
        await conn.run_sync(lambda c: command.downgrade(migrate.alembic_config(c), "0008"))

    async with records.transaction() as conn:
        await downgrade(conn)
        assert "audit_heads" not in await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
    await records.setup()
    await records.append_audit(event(0))
    with pytest.raises(RuntimeError, match="1 audit rows are in per-thread chains"):
        async with records.transaction() as conn:
            await downgrade(conn)
    with pytest.raises(sa.exc.DBAPIError, match="audit is append-only"):
        async with records.transaction() as conn:
            await conn.execute(sa.text("DELETE FROM audit"))
    assert (await verify(records)).ok
