"""The run-memory queue: finalize commits a run's memory with its execution, the memory writer moves it to
long-term memory off the request path (at least once, stored once), recall reads its user's queued memories
first (read-your-writes), shutdown flushes, and recall's read of recent executions is served by an index."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from keel.memory.long_term import LongTermMemory
from keel.memory.run_memory import write_run_memory
from keel.memory.types import MemoryScope
from keel.memory.writer import MemoryWriter
from keel.records import Records, RunMemory
from keel.records.memory_queue import recent_executions_query
from keel.records.types import Execution, utcnow
from keel.settings import Settings

PG_ADMIN = os.environ.get("KEEL_TEST_PG_ADMIN", "postgresql://127.0.0.1:5432/postgres")
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture
def fresh_pg() -> Iterator[str]:
    """A database of this test's own (claims see every row of the queue)."""
    name = f"keel_memq_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
async def records(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Records]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'records.sqlite'}"
    else:
        url = request.getfixturevalue("fresh_pg")
    rec = Records.from_url(url)
    await rec.setup()
    yield rec
    await rec.close()


@pytest.fixture
def ltm(tmp_path: Path) -> LongTermMemory:
    return LongTermMemory.from_settings(Settings(home=tmp_path, embeddings="hashing"))


def item(user: str, **kw: object) -> RunMemory:
    base: dict[str, object] = {
        "user_id": user,
        "tenant": "default",
        "execution_id": str(uuid.uuid4()),
        "task": "when do we deploy according to the handbook?",
        "tools_used": ("read_file",),
        "status": "succeeded",
        "answer": "Deploys happen on Tuesdays.",
    }
    return RunMemory(**{**base, **kw})  # type: ignore[arg-type]


def user() -> str:
    return f"u-{uuid.uuid4().hex[:10]}"


# -- the queue in the records database ----------------------------------------------------------------


async def test_enqueue_once_per_execution_and_only_with_its_transaction(records: Records) -> None:
    alice = user()
    first = item(alice, task="deploy? my password=hunter2")
    assert await records.enqueue_memory(first) is True
    assert await records.enqueue_memory(first) is False  # finalize re-run: still one row
    with pytest.raises(RuntimeError):
        async with records.transaction() as conn:
            await records.enqueue_memory(item(alice), conn=conn)
            raise RuntimeError("the execution's transaction failed")
    [row] = await records.queued_memory(user_id=alice)
    assert row.execution_id == first.execution_id and row.attempts == 0 and row.claimed_until is None
    assert row.tools_used == ("read_file",) and row.answer == "Deploys happen on Tuesdays."
    assert "hunter2" not in row.task  # the queue keeps no secret the execution record would not


async def test_a_claim_is_one_writers_until_its_lease_passes(records: Records) -> None:
    alice = user()
    for _ in range(6):
        await records.enqueue_memory(item(alice))
    now = utcnow()
    claims = await asyncio.gather(*(records.claim_memory(limit=2, lease_s=60, now=now) for _ in range(4)))
    ids = [m.id for claim in claims for m in claim]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 6  # every row once, to one claimer
    assert await records.claim_memory(limit=10, lease_s=60, now=now) == []
    later = now + timedelta(seconds=61)  # the claimers died: their leases passed
    assert len(await records.claim_memory(limit=10, lease_s=60, now=later)) == 6


# -- the writer ---------------------------------------------------------------------------------------


async def test_the_writer_stores_the_memory_then_deletes_the_row(
    records: Records, ltm: LongTermMemory
) -> None:
    alice = user()
    queued = item(alice)
    await records.enqueue_memory(queued)
    writer = MemoryWriter(records, ltm)
    assert await writer.write_batch() == 1
    assert await records.queued_memory(user_id=alice) == []
    [memory] = await ltm.list(MemoryScope(user_id=alice))
    assert memory.kind == "run" and memory.metadata["execution_id"] == queued.execution_id
    assert "Asked: when do we deploy" in memory.text and "Done: read_file" in memory.text


async def test_writing_a_row_again_stores_nothing_new(records: Records, ltm: LongTermMemory) -> None:
    alice = user()
    queued = item(alice)
    await records.enqueue_memory(queued)
    await write_run_memory(ltm, queued)  # a writer stored it and died before deleting the row
    writer = MemoryWriter(records, ltm)
    assert await writer.write_batch() == 1
    await records.enqueue_memory(queued)  # and once more (finalize re-run after the delete)
    assert await writer.write_batch() == 1
    assert await ltm.count(MemoryScope(user_id=alice)) == 1
    assert await records.queued_memory(user_id=alice) == []


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_failed_write_keeps_the_row_counts_it_and_backs_off(records: Records, tmp_path: Path) -> None:
    down = LongTermMemory.from_settings(
        Settings(home=tmp_path, embeddings="hashing", chroma_url=f"http://127.0.0.1:{_dead_port()}")
    )
    alice = user()
    await records.enqueue_memory(item(alice))
    writer = MemoryWriter(records, down)
    assert await writer.write_batch() == 1
    [row] = await records.queued_memory(user_id=alice)
    assert row.attempts == 1 and row.last_error and row.claimed_until is not None
    assert row.claimed_until > utcnow()  # backing off: not claimable yet
    assert await records.claim_memory(limit=10, lease_s=60) == []


async def test_a_shutdown_ends_the_linger_and_writes_at_once(records: Records, ltm: LongTermMemory) -> None:
    """Woken, the writer lingers to embed runs finishing together in one call; no run queues a row after
    a shutdown began, so `aclose` ends the linger and writes now (an hour's linger, a 10 s flush window)."""
    alice = user()
    writer = MemoryWriter(records, ltm, linger_s=3600)
    writer.start()
    writer.wake()  # nothing queued yet: the task finds no row, then lingers
    for _ in range(500):
        if not writer._wake.is_set():  # cleared when its linger begins
            break
        await asyncio.sleep(0.01)
    await records.enqueue_memory(item(alice))
    await writer.aclose()
    assert writer.written == 1
    assert await records.queued_memory(user_id=alice) == []
    assert await ltm.count(MemoryScope(user_id=alice)) == 1


# -- in runs ------------------------------------------------------------------------------------------


@pytest.fixture
def no_writer_task(monkeypatch: pytest.MonkeyPatch) -> None:
    """The memory writer's task never runs: rows stay queued until someone writes them."""
    monkeypatch.setattr(MemoryWriter, "start", lambda self: None)


async def test_a_run_commits_its_memory_to_the_queue(make_keel, no_writer_task: None) -> None:
    async with make_keel(["Deploys happen on Tuesdays."], embeddings="hashing") as keel:
        out = await keel.run("when do we deploy?", user_id="alice")
        [row] = await keel.records.queued_memory(user_id="alice")
        assert row.execution_id == out.execution_id and row.status == "succeeded"
        assert (await keel.records.get_execution(out.execution_id)).status == "succeeded"
        ltm = keel.backends.memory.long_term
        assert await ltm.list(MemoryScope(user_id="alice")) == []  # not written on the request path
        assert await keel.backends.memory_writer.write_batch() == 1
        [memory] = await ltm.list(MemoryScope(user_id="alice"))
        assert memory.metadata["execution_id"] == out.execution_id


async def test_the_next_run_recalls_a_memory_the_writer_has_not_written(
    make_keel, no_writer_task: None
) -> None:
    async with make_keel(["Deploys happen on Tuesdays.", "Tuesdays."], embeddings="hashing") as keel:
        first = await keel.run("when do we deploy according to the handbook?", user_id="alice")
        assert [r.execution_id for r in await keel.records.queued_memory(user_id="alice")] == [
            first.execution_id
        ]
        second = await keel.run("remind me: which day do we deploy?", user_id="alice")
        prompt = keel.fake_model.calls[-1]["messages"][0].content
        assert "memory: Asked: when do we deploy according to the handbook?" in prompt
        queued = [r.execution_id for r in await keel.records.queued_memory(user_id="alice")]
        assert queued == [first.execution_id, second.execution_id]  # recalled from the queue, not Chroma
        assert await keel.backends.memory.long_term.count(MemoryScope(user_id="alice")) == 0


async def test_shutdown_flushes_the_queue(make_keel, caplog: pytest.LogCaptureFixture) -> None:
    alice = user()
    caplog.set_level(logging.INFO, logger="keel.memory.writer")
    async with make_keel([], embeddings="hashing") as keel:
        assert keel.backends.memory_writer.running  # started with the keel
        for n in range(3):  # queued without waking the writer: the flush at close writes them
            await keel.records.enqueue_memory(item(alice, task=f"task number {n}"))
        ltm = keel.backends.memory.long_term
    assert await ltm.count(MemoryScope(user_id=alice)) == 3
    assert re.search(r"memory writer flushed: \d+ run memories written, none left", caplog.text)


async def test_a_flush_cut_short_says_what_it_left(make_keel, caplog: pytest.LogCaptureFixture) -> None:
    alice = user()
    async with make_keel([], embeddings="hashing", memory_flush_timeout_s=0) as keel:
        for _ in range(2):
            await keel.records.enqueue_memory(item(alice))
        records = keel.records
    assert "left 2 run memories in the queue for the next start (the flush stopped after 0s)" in caplog.text
    await records.setup()  # the pool reopens: the rows are still there
    assert len(await records.queued_memory(user_id=alice)) == 2
    await records.close()


# -- recall's read ------------------------------------------------------------------------------------


@pytest.mark.postgres
async def test_recalls_recent_executions_read_uses_the_index(fresh_pg: str) -> None:
    records = Records.from_url(fresh_pg)
    try:
        await records.setup()
        start = utcnow()
        rows = [
            Execution(
                execution_id=f"ex-{u}-{i}",
                thread_id=f"th-{u}-{i}",
                user_id=f"user-{u}",
                role="user",
                tenant="default",
                version="v1",
                task="t",
                status="succeeded",
                started_at=start - timedelta(seconds=i),
            ).as_dict()
            for u in range(50)
            for i in range(100)
        ]
        async with records.transaction() as conn:
            await conn.execute(sa.text("SET LOCAL synchronous_commit = off"))
            await conn.execute(
                sa.text(
                    "INSERT INTO executions (execution_id, thread_id, user_id, role, tenant, version, task,"
                    " status, started_at, steps, input_tokens, output_tokens, total_tokens, cost,"
                    " tools_used, tools_failed) VALUES (:execution_id, :thread_id, :user_id, :role, :tenant,"
                    " :version, :task, :status, CAST(:started_at AS timestamptz), 0, 0, 0, 0, 0, '[]', '[]')"
                ),
                rows,
            )
        async with records.transaction() as conn:
            await conn.execute(sa.text("ANALYZE executions"))
            query = recent_executions_query("user-7", limit=3)
            sql = str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
            plan = "\n".join(r[0] for r in (await conn.execute(sa.text("EXPLAIN " + sql))).all())
        assert "Index Scan Backward using ix_executions_user_id_started_at_execution_id" in plan, plan
        assert "Sort" not in plan, plan  # the newest three come off the index, nothing is sorted
        recent, _ = await records.recall_reads("user-7", "default", limit=3)
        assert [e.execution_id for e in recent] == ["ex-7-0", "ex-7-1", "ex-7-2"]
    finally:
        await records.close()


async def test_one_bad_row_does_not_hold_back_its_batch(records: Records, ltm: LongTermMemory) -> None:
    alice = user()
    good = [item(alice, task=f"question {n}") for n in range(2)]
    await records.enqueue_memory(good[0])
    await records.enqueue_memory(item("not a valid id!"))  # its scope is refused: the batch fails as one
    await records.enqueue_memory(good[1])
    assert await MemoryWriter(records, ltm).write_batch() == 3
    [bad] = await records.queued_memory()
    assert bad.user_id == "not a valid id!" and bad.attempts == 1 and "InvalidMemoryScope" in bad.last_error
    stored = {m.metadata["execution_id"] for m in await ltm.list(MemoryScope(user_id=alice))}
    assert stored == {g.execution_id for g in good}
