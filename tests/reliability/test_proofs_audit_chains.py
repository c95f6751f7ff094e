"""Proof that the audit log has no lock shared by every run: appends of different threads never wait for
each other, appends of one thread do (its chain stays linear), and processes racing on many threads
leave a log that verifies row for row.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from _race import race

from keel.records import AuditEvent, Records

pytestmark = [pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN = os.environ.get("KEEL_TEST_PG_ADMIN", "postgresql://127.0.0.1:5432/postgres")
WORKERS = 4
THREADS = 12
ROUNDS = 3

_WORKER = r"""
import asyncio, json, sys, time
from keel.records import AuditEvent, Records

db, threads, rounds = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])

def event(thread, i, k):
    return AuditEvent(execution_id="ex", thread_id=thread, user_id="alice", role="user", tenant="acme",
                      event="tool_call", tool=f"t{i}", detail=f"{k}")

async def one(records, thread):
    ids = []
    for i in range(rounds):
        ids += await records.append_audit_many([event(thread, i, "a"), event(thread, i, "b")])
        async with records.transaction() as conn:  # a step's transaction: the head stays locked to its end
            ids.append(await records.append_audit(event(thread, i, "c"), conn=conn))
    return ids

async def main():
    records = Records.from_url(db, pool_size=4)
    await records.ping()  # connect before the start line
    print("ready", flush=True)
    sys.stdin.readline()  # the start line, given once every worker is ready
    chunks = await asyncio.gather(*(one(records, t) for t in threads))
    await records.close()
    print(json.dumps([i for chunk in chunks for i in chunk]))

asyncio.run(main())
"""


@pytest.fixture
def db_url() -> Iterator[str]:
    """A new, empty PostgreSQL database of this test's own (verify reads the whole log)."""
    name = f"keel_chains_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield "postgresql+psycopg://" + PG_ADMIN.split("://", 1)[1].rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def records(db_url: str) -> AsyncIterator[Records]:
    rec = Records.from_url(db_url)
    await rec.setup()
    yield rec
    await rec.close()


def event(thread: str, i: int = 0) -> AuditEvent:
    return AuditEvent(
        execution_id=uuid.uuid4().hex,
        thread_id=thread,
        user_id="alice",
        role="user",
        tenant="acme",
        event="tool_call",
        tool=f"t{i}",
    )


async def _waiting_on_a_lock(records: Records, marker: str) -> bool:
    """Whether a backend running an audit append (its statement names `audit_heads`) waits on a lock."""
    query = sa.text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND query LIKE :marker"
    )
    async with records.engine.connect() as conn:
        return bool((await conn.execute(query, {"marker": f"%{marker}%"})).scalar())


async def test_an_open_append_blocks_its_own_thread_only(records: Records) -> None:
    mine, other = f"th-{uuid.uuid4().hex[:8]}", f"th-{uuid.uuid4().hex[:8]}"
    await records.append_audit(event(mine))  # both heads exist: no first-append path below
    await records.append_audit(event(other))
    async with records.transaction() as conn:
        held = await records.append_audit(event(mine, 1), conn=conn)  # holds mine's head until the end
        # Another thread's append commits while this transaction is open: nothing every run shares.
        theirs = await asyncio.wait_for(records.append_audit(event(other, 1)), timeout=20)
        async with records.engine.connect() as probe:
            advisory = (  # pg_locks covers the whole cluster: only this test's database counts
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
            assert (await probe.execute(sa.text(advisory))).scalar() == 0
        # The same thread's append waits for this transaction (its chain stays linear).
        same = asyncio.create_task(records.append_audit(event(mine, 2)))
        for _ in range(400):
            if await _waiting_on_a_lock(records, "audit_heads"):
                break
            await asyncio.sleep(0.025)
        else:
            raise AssertionError("the same thread's append never waited for the open transaction")
        assert not same.done()
    after = await same
    assert held < theirs < after  # mine's next row drew its id only once the transaction ended
    report = await records.verify_audit()
    assert report.ok and (report.rows, report.chains) == (5, 2)


async def test_processes_racing_on_many_threads_leave_a_log_that_verifies(records: Records) -> None:
    threads = [f"th-{uuid.uuid4().hex[:8]}" for _ in range(THREADS)]
    reports = await race(
        _WORKER,
        records.engine.url.render_as_string(hide_password=False),
        json.dumps(threads),
        str(ROUNDS),
        workers=WORKERS,
    )
    ids = [i for report in reports for i in report]
    assert len(ids) == len(set(ids)) == WORKERS * THREADS * ROUNDS * 3
    report = await records.verify_audit(page_size=50)
    assert report.ok, report.describe()
    assert (report.rows, report.chains) == (len(ids), THREADS)
    for thread in threads[:3]:  # each thread's rows are one chain, in id order
        rows = await records.audit_for(thread_id=thread, limit=1000)
        assert len(rows) == WORKERS * ROUNDS * 3
        assert all(b.prev_hash == a.row_hash for a, b in zip(rows, rows[1:], strict=False))
