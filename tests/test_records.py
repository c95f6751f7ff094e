"""The records database: one conformance suite, run over SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from keel.records import (
    Approval,
    AuditEvent,
    Execution,
    OutboxMessage,
    Records,
    RecordsUnavailable,
    ToolResult,
    utcnow,
)
from keel.records.migrate import current_revision, head_revision
from keel.records.tables import metadata

PG_ADMIN = os.environ.get("KEEL_TEST_PG_ADMIN", "postgresql://127.0.0.1:5432/postgres")
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
CHECKED = ("executions", "approvals", "tool_results")
T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def rec_pg_databases() -> Iterator[Callable[[], str]]:
    """Creates fresh `keel_rec_<random>` databases on demand; drops them all at the end."""
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at {PG_ADMIN}: {exc}")
    created: list[str] = []
    base = PG_ADMIN.rsplit("/", 1)[0].split("://", 1)[1]

    def create() -> str:
        name = f"keel_rec_{secrets.token_hex(6)}"
        admin.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return f"postgresql+psycopg://{base}/{name}"

    yield create
    for name in created:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture(scope="session")
def rec_pg_url(rec_pg_databases: Callable[[], str]) -> str:
    """The one Postgres database the suite shares (tables truncated before each test)."""
    return rec_pg_databases()


@pytest.fixture(params=BACKENDS)
def fresh_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A URL of an empty database, never migrated."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'fresh' / 'records.sqlite'}"
    return request.getfixturevalue("rec_pg_databases")()


@pytest.fixture(params=BACKENDS)
async def records(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[Records]:
    """A migrated, empty records database."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'records.sqlite'}"
    else:
        url = request.getfixturevalue("rec_pg_url")
    rec = Records.from_url(url)
    await rec.setup()
    if request.param == "postgres":
        async with rec.transaction() as conn:
            # audit refuses TRUNCATE (append-only trigger); the superuser test fixture bypasses it
            await conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
            await conn.execute(
                sa.text("TRUNCATE executions, audit, approvals, tool_results, outbox RESTART IDENTITY")
            )
    yield rec
    await rec.close()


def execution(execution_id: str = "ex-1", **kw) -> Execution:
    base = dict(thread_id="th-1", user_id="alice", role="analyst", tenant="acme", version="v1", task="sum it")
    return Execution(execution_id=execution_id, **{**base, **kw})


def event(**kw) -> AuditEvent:
    base = dict(execution_id="ex-1", thread_id="th-1", user_id="alice", role="analyst", tenant="acme")
    return AuditEvent(**{**base, "event": "tool_call", **kw})


def approval(tool_call_id: str = "call-1", **kw) -> Approval:
    base = dict(
        thread_id="th-1",
        execution_id="ex-1",
        tool="send_email",
        args={"to": "bob@example.com"},
        args_hash="h1",
        requester="alice",
        role="analyst",
        tenant="acme",
        reason="send_email needs approval",
        expires_at=utcnow() + timedelta(hours=1),
    )
    return Approval(tool_call_id=tool_call_id, **{**base, **kw})


def tool_result(tool_call_id: str = "call-1", **kw) -> ToolResult:
    base = dict(thread_id="th-1", execution_id="ex-1", tool="send_email", status="ok", output="queued")
    return ToolResult(tool_call_id=tool_call_id, **{**base, **kw})


def message(tool_call_id: str = "call-1", user_id: str = "alice") -> OutboxMessage:
    return OutboxMessage(
        thread_id="th-1",
        tool_call_id=tool_call_id,
        user_id=user_id,
        recipient="bob@x",
        subject="hi",
        body="hello",
    )


# -- setup and connectivity --------------------------------------------------------------------


async def test_setup_twice_reaches_head_and_matches_tables(fresh_url: str) -> None:
    rec = Records.from_url(fresh_url)
    try:
        await rec.setup()
        await rec.setup()
        await rec.ping()
        assert await current_revision(rec.engine) == head_revision()
        assert head_revision() == _newest_migration()
        async with rec.engine.connect() as conn:
            diffs = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), metadata))
        assert diffs == []
        async with rec.engine.connect() as conn:
            checks = await conn.run_sync(
                lambda c: {t: [ck["name"] for ck in sa.inspect(c).get_check_constraints(t)] for t in CHECKED}
            )
        assert checks == {t: [f"ck_{t}_status"] for t in CHECKED}
    finally:
        await rec.close()


async def test_concurrent_setup_from_separate_engines(fresh_url: str) -> None:
    engines = [Records.from_url(fresh_url) for _ in range(3)]
    try:
        await asyncio.gather(*(r.setup() for r in engines for _ in range(2)))
        assert await current_revision(engines[0].engine) == head_revision()
        await engines[1].start_execution(execution())
        assert await engines[2].get_execution("ex-1") is not None
    finally:
        await asyncio.gather(*(r.close() for r in engines))


async def test_concurrent_setup_from_separate_processes(fresh_url: str) -> None:
    code = """if True:
        import asyncio, sys
        from keel.records import Records

        async def main(url):
            rec = Records.from_url(url)
            try:
                await rec.setup()
            finally:
                await rec.close()

        asyncio.run(main(sys.argv[1]))
    """
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, fresh_url, stderr=asyncio.subprocess.PIPE
        )
        for _ in range(3)
    ]
    for proc in procs:
        _, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
    rec = Records.from_url(fresh_url)
    assert await current_revision(rec.engine) == head_revision()
    await rec.close()


async def test_ping_unreachable_postgres_names_the_address() -> None:
    rec = Records.from_url("postgresql+psycopg://127.0.0.1:1/keel")
    started = time.monotonic()
    with pytest.raises(RecordsUnavailable, match=r"127\.0\.0\.1:1/keel"):
        await rec.ping()
    with pytest.raises(RecordsUnavailable, match=r"127\.0\.0\.1:1/keel"):
        await rec.get_execution("x")
    assert time.monotonic() - started < 5
    await rec.close()


async def test_ping_unopenable_sqlite_names_the_file(tmp_path) -> None:
    (tmp_path / "file").write_text("")
    path = tmp_path / "file" / "records.sqlite"  # parent is a file: cannot be opened
    rec = Records.from_url(f"sqlite:///{path}")
    with pytest.raises(RecordsUnavailable, match="records.sqlite"):
        await rec.ping()
    await rec.close()


# -- executions --------------------------------------------------------------------------------


async def test_start_execution_is_idempotent_and_round_trips(records: Records) -> None:
    ex = execution(started_at=T0, cost=Decimal("0.00012345"), tools_used=["read_file"])
    await records.start_execution(ex)
    await records.start_execution(execution(task="other", started_at=T0))
    got = await records.get_execution("ex-1")
    assert got == ex
    assert str(got.cost) == "0.00012345" and isinstance(got.cost, Decimal)
    assert got.started_at.tzinfo is not None and got.started_at.utcoffset() == timedelta(0)
    assert await records.get_execution("missing") is None


async def test_update_execution_sets_only_given_fields(records: Records) -> None:
    await records.start_execution(execution(started_at=T0))
    ended = T0.astimezone(timezone(timedelta(hours=2))) + timedelta(seconds=3)
    await records.update_execution(
        "ex-1",
        status="succeeded",
        ended_at=ended,
        duration_ms=3000,
        steps=4,
        total_tokens=120,
        cost=Decimal("12345.12345678"),
        tools_used=("read_file", "send_email"),
        tools_failed=["send_email"],
        succeeded=True,
        answer="42",
    )
    got = await records.get_execution("ex-1")
    assert got is not None
    assert (got.status, got.steps, got.total_tokens, got.succeeded, got.answer) == (
        "succeeded",
        4,
        120,
        True,
        "42",
    )
    assert got.ended_at == ended and got.ended_at.tzinfo == UTC
    assert got.cost == Decimal("12345.12345678")
    assert got.tools_used == ("read_file", "send_email") and got.tools_failed == ("send_email",)
    assert got.task == "sum it" and got.error is None
    with pytest.raises(ValueError, match="nope"):
        await records.update_execution("ex-1", nope=1)
    with pytest.raises(ValueError):
        await records.update_execution("ex-1", execution_id="other")


async def test_latest_and_list_executions_newest_first(records: Records) -> None:
    for i, (user, status) in enumerate([("alice", "succeeded"), ("bob", "failed"), ("alice", "running")]):
        await records.start_execution(
            execution(f"ex-{i}", user_id=user, status=status, started_at=T0 + timedelta(minutes=i))
        )
    await records.start_execution(execution("other", thread_id="th-2", started_at=T0 + timedelta(hours=1)))
    latest = await records.latest_execution("th-1")
    assert latest is not None and latest.execution_id == "ex-2"
    assert await records.latest_execution("nope") is None
    assert [e.execution_id for e in await records.list_executions()] == ["other", "ex-2", "ex-1", "ex-0"]
    assert [e.execution_id for e in await records.list_executions(user_id="alice", limit=2)] == [
        "other",
        "ex-2",
    ]
    assert [e.execution_id for e in await records.list_executions(status="failed")] == ["ex-1"]


# -- audit -------------------------------------------------------------------------------------


async def test_audit_append_and_read_in_order(records: Records) -> None:
    ids = [
        await records.append_audit(event(tool=f"t{i}", args={"n": i, "nested": [1, "x"]}, status="ok"))
        for i in range(5)
    ]
    ids.append(await records.append_audit(event(execution_id="ex-2", thread_id="th-2", event="permission")))
    assert ids == sorted(ids) and len(set(ids)) == 6
    rows = await records.audit_for(thread_id="th-1")
    assert [r.tool for r in rows] == ["t0", "t1", "t2", "t3", "t4"]
    assert rows[0].args == {"n": 0, "nested": [1, "x"]} and rows[0].id == ids[0]
    assert [r.tool for r in await records.audit_for(thread_id="th-1", limit=2)] == ["t3", "t4"]
    only = await records.audit_for(execution_id="ex-2")
    assert len(only) == 1 and only[0].args is None and only[0].event == "permission"
    assert [r.id for r in await records.tail_audit(3)] == ids[-3:]
    with pytest.raises(ValueError):
        await records.audit_for()
    assert not hasattr(records, "delete_audit") and not hasattr(records, "update_audit")


# -- approvals ---------------------------------------------------------------------------------


async def test_create_approval_is_idempotent(records: Records) -> None:
    first = approval(created_at=T0)
    stored = await records.create_approval(first)
    assert stored == first
    again = await records.create_approval(approval(args={"to": "eve@example.com"}, args_hash="h2"))
    assert again == first
    racers = await asyncio.gather(*(records.create_approval(approval("call-2")) for _ in range(5)))
    assert len({r.approval_id for r in racers}) == 1
    assert await records.get_approval(first.approval_id) == first
    assert await records.approval_for_call("th-1", "call-1") == first
    assert await records.approval_for_call("th-1", "nope") is None
    assert await records.get_approval("nope") is None


async def test_list_approvals_filters_oldest_first(records: Records) -> None:
    for i, requester in enumerate(["alice", "bob", "alice"]):
        await records.create_approval(
            approval(f"call-{i}", requester=requester, created_at=T0 + timedelta(seconds=i))
        )
    first = await records.approval_for_call("th-1", "call-0")
    assert first is not None
    assert await records.decide_approval(first.approval_id, status="rejected", decided_by="carol")
    assert [a.tool_call_id for a in await records.list_approvals()] == ["call-1", "call-2"]
    assert [a.tool_call_id for a in await records.list_approvals(requester="alice")] == ["call-2"]
    assert [a.tool_call_id for a in await records.list_approvals(status=None)] == [
        "call-0",
        "call-1",
        "call-2",
    ]
    assert [a.tool_call_id for a in await records.list_approvals(status="rejected")] == ["call-0"]
    assert len(await records.list_approvals(status=None, limit=2)) == 2


async def test_only_one_concurrent_decider_wins(records: Records) -> None:
    a = await records.create_approval(approval())
    outcomes = await asyncio.gather(
        *(
            records.decide_approval(a.approval_id, status="approved", decided_by=f"approver-{i}")
            for i in range(8)
        )
    )
    assert outcomes.count(True) == 1
    decided = await records.get_approval(a.approval_id)
    assert decided is not None and decided.status == "approved"
    assert decided.decided_by == f"approver-{outcomes.index(True)}" and decided.decided_at is not None
    assert not await records.decide_approval(a.approval_id, status="rejected", decided_by="late")


async def test_decide_approval_records_edits_and_refuses_expired_approvals(records: Records) -> None:
    a = await records.create_approval(approval())
    when = utcnow()
    edited = {"to": "bob@example.com", "subject": "fixed"}
    assert await records.decide_approval(
        a.approval_id, status="edited", decided_by="carol", reason="typo", edited_args=edited, now=when
    )
    got = await records.get_approval(a.approval_id)
    assert got is not None
    assert (got.status, got.edited_args, got.decision_reason, got.decided_at) == (
        "edited",
        edited,
        "typo",
        when,
    )
    with pytest.raises(ValueError):
        await records.decide_approval(a.approval_id, status="pending", decided_by="carol")
    old = await records.create_approval(approval("call-2", expires_at=T0))
    assert not await records.decide_approval(old.approval_id, status="approved", decided_by="carol")
    assert await records.decide_approval(old.approval_id, status="expired", decided_by="system")


# -- tool results, outbox, transactions --------------------------------------------------------


async def test_save_tool_result_once(records: Records) -> None:
    first = tool_result(created_at=T0)
    assert await records.save_tool_result(first) is True
    assert await records.save_tool_result(tool_result(output="again", status="error")) is False
    assert await records.get_tool_result("th-1", "call-1") == first
    assert await records.get_tool_result("th-1", "nope") is None


async def test_effect_and_result_commit_together(records: Records) -> None:
    async with records.transaction() as conn:
        await records.add_outbox(message("call-1"), conn=conn)
        assert await records.save_tool_result(tool_result("call-1"), conn=conn)
        await records.append_audit(event(tool_call_id="call-1"), conn=conn)
    async with records.transaction() as conn:
        await records.add_outbox(message("call-1"), conn=conn)  # a replay adds nothing
        await records.add_outbox(message("call-9", user_id="bob"), conn=conn)
    sent = await records.list_outbox(user_id="alice")
    assert [(m.tool_call_id, m.subject, m.id is not None) for m in sent] == [("call-1", "hi", True)]
    assert [m.user_id for m in await records.list_outbox()] == ["alice", "bob"]
    assert await records.get_tool_result("th-1", "call-1") is not None
    assert len(await records.tail_audit()) == 1


async def test_failed_transaction_leaves_neither_row(records: Records) -> None:
    with pytest.raises(RuntimeError, match="crash"):
        async with records.transaction() as conn:
            await records.add_outbox(message("call-2"), conn=conn)
            await records.save_tool_result(tool_result("call-2"), conn=conn)
            await records.append_audit(event(tool_call_id="call-2"), conn=conn)
            raise RuntimeError("crash after the effect")
    assert await records.list_outbox() == []
    assert await records.get_tool_result("th-1", "call-2") is None
    assert await records.tail_audit() == []


# -- value objects -----------------------------------------------------------------------------


async def test_rows_serialise_to_json(records: Records) -> None:
    await records.start_execution(execution(started_at=T0, cost=Decimal("0.00012345"), tools_used=["a"]))
    got = await records.get_execution("ex-1")
    assert got is not None
    data = json.loads(json.dumps(got.as_dict()))
    assert data["cost"] == "0.00012345" and data["tools_used"] == ["a"]
    assert datetime.fromisoformat(data["started_at"]) == T0
    await records.append_audit(event(ts=T0))
    (row,) = await records.tail_audit()
    assert json.loads(json.dumps(row.as_dict()))["id"] == row.id


async def test_naive_timestamps_are_refused(records: Records) -> None:
    with pytest.raises(sa.exc.StatementError, match="naive"):
        await records.start_execution(execution(started_at=datetime(2026, 1, 1)))


def _newest_migration() -> str:
    """The revision id of the highest-numbered migration file shipped in the package."""
    versions = Path(__file__).resolve().parent.parent / "keel" / "records" / "migrations" / "versions"
    return max(p.name for p in versions.glob("[0-9][0-9][0-9][0-9]_*.py")).split("_", 1)[0]
