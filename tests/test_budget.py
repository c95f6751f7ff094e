"""Monthly budgets: the ledger on both profiles, and a run whose user runs out of budget."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa

from keel.budget import BudgetExceeded, BudgetLedger
from keel.memory.writer import MemoryWriter
from keel.records import Records
from keel.settings import Settings
from keel.testing.fake_model import Slow, tool_call

D = Decimal


def _user() -> str:
    return f"u{uuid.uuid4().hex[:10]}"  # the PostgreSQL database lives for the whole session


@pytest.fixture
async def ledger(settings: Settings):
    records = Records.from_url(settings.records_url)
    await records.setup()
    yield BudgetLedger(records, default_usd=D("1.00"))
    await records.close()


def _reserve(ledger: BudgetLedger, user: str, amount: str, now: datetime | None = None):
    return ledger.reserve(
        user_id=user,
        thread_id="t1",
        execution_id="e1",
        kind="model",
        name="fake-model",
        estimate=D(amount),
        now=now,
    )


async def test_reserve_settle_release_move_the_money(ledger: BudgetLedger) -> None:
    ann = _user()
    await ledger.set_limit(ann, D("0.01"))
    a = await _reserve(ledger, ann, "0.004")
    b = await _reserve(ledger, ann, "0.003")
    s = await ledger.status(ann)
    assert (s.spent, s.reserved, s.remaining) == (D("0"), D("0.007"), D("0.003"))
    assert await ledger.settle(a, D("0.00123456"))
    assert await ledger.release(b, "model failed")
    assert not await ledger.settle(a, D("1")), "a reservation is closed once"
    s = await ledger.status(ann)
    assert (s.spent, s.reserved, s.remaining) == (D("0.00123456"), D("0"), D("0.00876544"))
    rows = {r.reservation_id: r for r in await ledger.history(ann)}
    assert (rows[a.reservation_id].status, rows[a.reservation_id].actual) == ("settled", D("0.00123456"))
    assert (rows[b.reservation_id].status, rows[b.reservation_id].reason) == ("released", "model failed")


async def test_a_reservation_that_does_not_fit_says_what_is_left_and_when_it_resets(
    ledger: BudgetLedger,
) -> None:
    bo = _user()
    await ledger.set_limit(bo, D("0.005"))
    now = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
    await _reserve(ledger, bo, "0.004", now)
    with pytest.raises(BudgetExceeded) as info:
        await _reserve(ledger, bo, "0.002", now)
    text = str(info.value)
    assert "$0.001000 of $0.005000 left for 2026-03" in text and "resets 2026-04-01 00:00 UTC" in text
    assert len(await ledger.history(bo)) == 1, "a refused reservation writes nothing"


async def test_month_roll_over_in_utc_starts_fresh_and_settles_into_the_old_month(
    ledger: BudgetLedger,
) -> None:
    cy = _user()
    await ledger.set_limit(cy, D("0.010"))
    jan = datetime(2026, 1, 31, 23, 59, 59, tzinfo=UTC)
    feb = datetime(2026, 2, 1, 0, 0, 0, tzinfo=UTC)
    held = await _reserve(ledger, cy, "0.009", jan)
    with pytest.raises(BudgetExceeded):
        await _reserve(ledger, cy, "0.002", jan)
    fresh = await _reserve(ledger, cy, "0.009", feb)
    assert fresh.month == "2026-02" and held.month == "2026-01"
    await ledger.settle(held, D("0.008"), now=feb)
    assert (await ledger.status(cy, now=jan)).spent == D("0.008")
    feb_status = await ledger.status(cy, now=feb)
    assert (feb_status.spent, feb_status.reserved) == (D("0"), D("0.009"))
    assert [e.month for e in await ledger.history(cy, month="2026-01")] == ["2026-01"]


async def test_budget_raised_mid_month_applies_at_once(ledger: BudgetLedger) -> None:
    di = _user()
    await ledger.set_limit(di, D("0.001"))
    await _reserve(ledger, di, "0.0008")
    with pytest.raises(BudgetExceeded):
        await _reserve(ledger, di, "0.0005")
    await ledger.set_limit(di, D("0.002"))
    await _reserve(ledger, di, "0.0005")
    assert (await ledger.status(di)).remaining == D("0.0007")


async def test_concurrent_reservations_never_overdraw(ledger: BudgetLedger) -> None:
    ed = _user()
    await ledger.set_limit(ed, D("0.0105"))
    results = await asyncio.gather(
        *[_reserve(ledger, ed, "0.001") for _ in range(20)], return_exceptions=True
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 10
    assert all(isinstance(r, BudgetExceeded) for r in results if isinstance(r, BaseException))
    assert (await ledger.status(ed)).reserved == D("0.010")


async def test_a_reservation_and_its_settlement_are_one_transaction_each(ledger: BudgetLedger) -> None:
    fay = _user()
    await ledger.set_limit(fay, D("0.01"))
    before = (ledger.transactions, ledger.statements)
    held = await _reserve(ledger, fay, "0.004")
    assert await ledger.settle(held, D("0.001"))
    one_statement = ledger.records.engine.dialect.name == "postgresql"  # SQLite: two, no data-modifying CTE
    per_op = 1 if one_statement else 2
    assert (ledger.transactions, ledger.statements) == (before[0] + 2, before[1] + 2 * per_op)
    assert not await ledger.settle(held, D("0.001")), "a second settle is a no-op"
    s = await ledger.status(fay)
    assert (s.spent, s.reserved) == (D("0.001"), D("0"))


async def test_a_late_settle_charges_a_released_reservation_once(ledger: BudgetLedger) -> None:
    """A call that answered after a crash recovery released its reservation is still charged, and
    the released entry gives nothing back twice."""
    gus = _user()
    await ledger.set_limit(gus, D("0.01"))
    held = await _reserve(ledger, gus, "0.004")
    assert await ledger.release(held, "crash recovery") == 1
    assert not await ledger.settle(held, D("0.002")), "a released entry is closed to a plain settle"
    assert await ledger.settle(held, D("0.002"), late=True)
    assert not await ledger.settle(held, D("0.002"), late=True), "and charged once"
    s = await ledger.status(gus)
    assert (s.spent, s.reserved) == (D("0.002"), D("0"))
    [entry] = await ledger.history(gus)
    assert (entry.status, entry.actual) == ("settled", D("0.002"))


async def test_a_model_call_costs_the_records_one_transaction_and_every_charge_is_settled(
    make_keel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each model call's reservation is one transaction that also settles the call before it; the last
    call's charge commits with the execution record. The guard edges read no ledger (the month each
    reservation returned says there is room), and at the end nothing is left reserved."""
    # the background memory writer's own transactions (rows other tests left queued) are not the run's
    monkeypatch.setattr(MemoryWriter, "start", lambda self: None)
    turns = [tool_call("read_file", "c1", path="shared/handbook.md"), "Deploy on Tuesdays."]
    async with make_keel(turns) as keel:
        ledger, user = keel.backends.ledger, _user()
        begins: list[str] = []
        sync_engine = keel.records.engine.sync_engine
        listener = lambda conn: begins.append("begin")  # noqa: E731
        sa.event.listen(sync_engine, "begin", listener)
        reads, transactions = ledger.reads, ledger.transactions
        try:
            out = await keel.run("what does the handbook say?", user_id=user)
        finally:
            sa.event.remove(sync_engine, "begin", listener)
        assert out.path == ["recall", "plan", "decide", "tool", "decide", "finalize"]
        assert ledger.reads - reads == 0, "two guard edges, no ledger read"
        assert ledger.transactions - transactions == 3, "plan + two decide turns: one reservation each"
        # recall 1; plan, decide, decide: 1 each (reservation, settling the call before); the allowed
        # call's tool step 2 (before it: the exactly-once read, its permission row and the owed charge;
        # after it: the result, its audit row and its charge); finalize 1 (the last charge with the
        # execution record); then Keel.run reads the execution it returns
        assert len(begins) == 8
        entries = await ledger.history(user)
        status = await ledger.status(user)
    assert [e.status for e in entries] == ["settled"] * 3
    assert status.reserved == 0 and status.spent == sum(e.actual for e in entries) > 0


async def test_the_guard_edge_stops_only_on_a_fresh_read_and_the_reservation_holds_the_line(
    ledger: BudgetLedger,
) -> None:
    """Two ledgers over one database, as two replicas: what one saw of the month goes stale when the
    other moves money. A stale "full" is read again before it stops a run; a stale "room" passes the
    edge, and the reservation itself refuses what does not fit."""
    from keel.context import RunContext
    from keel.guards import Budget, NextCall

    other = BudgetLedger(ledger.records, default_usd=D("1.00"))
    hal = _user()
    await ledger.set_limit(hal, D("0.002"))
    view = NextCall(state={}, run=RunContext(user_id=hal), model="m", now=0.0, bound=lambda: D("0.002"))
    held = await _reserve(other, hal, "0.002")
    assert await Budget(ledger).check(view) is not None, "full: this ledger read the month"
    await other.release(held, "done")
    reads = ledger.reads
    assert await Budget(ledger).check(view) is None, "stale full, read again: room"
    assert ledger.reads == reads + 1
    await _reserve(other, hal, "0.001")
    assert await Budget(ledger).check(view) is None, "stale room: the edge passes without a read"
    assert ledger.reads == reads + 1
    with pytest.raises(BudgetExceeded, match=r"\$0\.001000 of \$0\.002000 left"):
        await _reserve(ledger, hal, "0.002")


async def test_a_user_whose_budget_runs_out_ends_in_fallback_and_resumes_when_raised(make_keel) -> None:
    turns = [
        tool_call("read_file", "c1", path="shared/handbook.md"),
        "Deploy on Tuesdays.",
        "Still Tuesdays.",
    ]
    async with make_keel(turns) as keel:
        ledger, user = keel.backends.ledger, _user()
        first = await keel.run("what does the handbook say?", user_id=user)
        assert first.status == "succeeded"
        spent = (await ledger.status(user)).spent
        assert spent == D("0.00006"), "plan + two decide turns at 10 in / 5 out tokens of fake-model"
        await ledger.set_limit(user, spent + D("0.0001"))  # less than any call's estimate
        out = await keel.run("and what else?", user_id=user)
        assert (out.status, out.terminated_reason) == ("terminated", "budget_exceeded")
        assert out.path == ["recall", "plan", "fallback", "finalize"], "nothing is called without room"
        assert "$0.000100 of $0.000160 left for" in out.answer and "resets" in out.answer
        assert out.thread_id in out.answer
        status = await ledger.status(user)
        entries = await ledger.history(user)
        assert status.reserved == 0 and status.spent == spent <= status.limit
        assert status.spent == sum(e.actual for e in entries if e.status == "settled")
        assert {e.status for e in entries} == {"settled"}, "the refused reservation wrote no row"
        assert (await keel.records.get_execution(first.execution_id)).cost == spent
        await ledger.set_limit(user, D("1"))
        resumed = await keel.resume(out.thread_id)
        assert resumed.status == "succeeded" and resumed.answer == "Still Tuesdays."


async def test_a_cancelled_run_releases_its_reservation(make_keel) -> None:
    async with make_keel([Slow(30.0, "never")], plan_enabled=False) as keel:
        ledger, user = keel.backends.ledger, _user()
        task = asyncio.create_task(keel.run("answer slowly", user_id=user))
        for _ in range(200):
            if (await ledger.status(user)).reserved > 0:
                break
            await asyncio.sleep(0.05)
        assert (await ledger.status(user)).reserved > 0
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        status = await ledger.status(user)
        assert (status.reserved, status.spent) == (0, 0)
        [entry] = await ledger.history(user)
        assert (entry.status, entry.actual) == ("released", None)


async def test_a_model_without_a_price_is_refused_at_start(make_keel) -> None:
    from keel.costs import UnknownPrice

    with pytest.raises(UnknownPrice, match="no price for model 'mystery'"):
        async with make_keel([], fallback_models=["mystery"]):
            pass
