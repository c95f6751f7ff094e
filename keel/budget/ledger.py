"""The budget ledger: per-user monthly limits; reserve, settle and release as conditional writes.

One transaction per operation, and on PostgreSQL one statement (keel/budget/statements.py): the
reservation adds its estimate to the user's month row only where `spent + reserved + estimate` stays
within the limit, so concurrent reservations from any number of processes never pass it, and no lock
is held while the client waits on the network. Months are UTC calendar months; a new month starts
with nothing spent.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from keel.budget.known import KnownMonths
from keel.budget.statements import (
    Statement,
    close_entry,
    close_pg,
    entry_insert,
    month_upsert,
    move_money,
    reserve_pg,
)
from keel.budget.tables import budget_entries, budget_limits, budget_months
from keel.budget.types import (
    BudgetEntry,
    BudgetExceeded,
    BudgetStatus,
    EntryKind,
    Reservation,
    month_of,
    next_month_start,
)
from keel.costs import usd
from keel.records import Records, utcnow

__all__ = ["BudgetLedger"]

_ZERO = Decimal(0)


class BudgetLedger:
    """Monthly budgets in the records database (SQLite or PostgreSQL, one code path)."""

    def __init__(self, records: Records, *, default_usd: float | Decimal) -> None:
        self.records = records
        self.default = usd(default_usd)
        self.transactions = 0
        """Database transactions this ledger has opened (for the benchmark)."""
        self.statements = 0
        """Statements its reservations and settlements sent (one each on PostgreSQL)."""
        self.reads = 0
        """Status reads (the guard edge's when it does not know the month, and each refusal's)."""
        self._known = KnownMonths()

    # -- writes: one transaction each ------------------------------------------------------

    async def reserve(
        self,
        *,
        user_id: str,
        thread_id: str,
        execution_id: str,
        kind: EntryKind,
        name: str,
        estimate: Decimal,
        now: datetime | None = None,
        settle_first: Sequence[tuple[Reservation, Decimal]] = (),
    ) -> Reservation:
        """Hold `estimate` for one call, or raise BudgetExceeded saying what is left and when it resets.

        `settle_first`: earlier calls' charges (reservation, actual) settled in the same transaction
        before the reservation (as `settle(..., late=True)`: a charge already settled is not charged
        again), so a model call costs the ledger one transaction: the previous call's settlement and this
        call's reservation. They commit even when this reservation is refused."""
        now = now or utcnow()
        month = month_of(now)
        res = Reservation(
            reservation_id=uuid.uuid4().hex,
            user_id=user_id,
            month=month,
            kind=kind,
            name=name,
            estimate=usd(estimate),
        )
        async with self._tx() as conn:
            for earlier, actual in settle_first:
                await self._settle_in(conn, earlier, actual, now, late=True)
            if self._dialect == "postgresql":
                stmt = reserve_pg(res, thread_id, execution_id, default=self.default, now=now)
                month_row = (await self._run(conn, stmt)).first()
            else:
                upsert = month_upsert(self._dialect, res, default=self.default, now=now)
                month_row = (await self._run(conn, upsert)).first()
                if month_row is not None:
                    await self._run(conn, entry_insert(res, thread_id, execution_id, now))
        if month_row is None:  # refused: read once (no lock) to say what is left and when it resets
            raise BudgetExceeded(await self.status(user_id, now=now), res.estimate)
        self._saw(user_id, month, month_row)
        return res

    async def settle(
        self,
        res: Reservation,
        actual: Decimal,
        *,
        now: datetime | None = None,
        conn: AsyncConnection | None = None,
        late: bool = False,
    ) -> bool:
        """Turn a reservation into spend of `actual`. False when it was already settled (or released,
        unless `late`).

        The truth is charged even when it passes the reservation's bound (a provider that ignored
        `max_tokens`): the entry is then marked `overrun`. With `conn`, the settlement joins the caller's
        transaction (a tool's result row and its charge commit together). `late` settles a call known to
        have answered whose reservation a crash recovery released in the meantime.
        """
        if conn is None:
            async with self._tx() as tx:
                return await self._settle_in(tx, res, actual, now or utcnow(), late=late)
        return await self._settle_in(conn, res, actual, now or utcnow(), late=late)

    async def settle_many(
        self, charges: Sequence[tuple[Reservation, Decimal]], *, conn: AsyncConnection
    ) -> None:
        """Settle earlier calls' charges inside the caller's transaction (`late`: see `settle`), so they
        commit with that step's other writes (a tool's result row, the execution record)."""
        now = utcnow()
        for res, actual in charges:
            await self._settle_in(conn, res, actual, now, late=True)

    async def _settle_in(
        self, conn: AsyncConnection, res: Reservation, actual: Decimal, now: datetime, *, late: bool
    ) -> bool:
        actual = usd(actual)
        reason = None
        if actual > res.estimate:
            reason = f"overrun: ${actual:.8f} charged over the reserved bound of ${res.estimate:.8f}"
        return await self._close(res, "settled", actual, reason, now, conn=conn, from_released=late)

    async def release(self, res: Reservation, reason: str, *, now: datetime | None = None) -> bool:
        """Give a reservation back (the call failed or was cancelled). False when already closed."""
        return await self._close(res, "released", None, reason, now or utcnow())

    async def release_open(self, execution_id: str, reason: str) -> int:
        """Release every reservation an execution still holds (after a crash); returns how many."""
        query = sa.select(budget_entries).where(
            budget_entries.c.execution_id == execution_id, budget_entries.c.status == "reserved"
        )
        async with self.records.transaction() as conn:
            rows = (await conn.execute(query)).all()
        count = 0
        for row in rows:
            res = Reservation(
                reservation_id=row.reservation_id,
                user_id=row.user_id,
                month=row.month,
                kind=row.kind,
                name=row.name,
                estimate=row.estimate,
            )
            count += await self.release(res, reason)
        return count

    async def spent_by(
        self,
        execution_id: str,
        *,
        conn: AsyncConnection | None = None,
        settling: Sequence[tuple[Reservation, Decimal]] = (),
    ) -> Decimal:
        """What an execution was charged: the sum of its settled entries, plus `settling` (charges the
        caller settles later in the same transaction) where not settled already. After a crash this
        includes a call that answered and was settled before its step's checkpoint (the resumed run asked
        again), which the run's own state never saw."""
        e = budget_entries.c
        query = sa.select(e.reservation_id, e.status, e.actual).where(e.execution_id == execution_id)
        if conn is None:
            async with self.records.transaction() as tx:
                return await self.spent_by(execution_id, conn=tx, settling=settling)
        rows = {r.reservation_id: r for r in (await conn.execute(query)).all()}
        total = sum((r.actual or _ZERO for r in rows.values() if r.status == "settled"), _ZERO)
        for res, actual in settling:
            row = rows.get(res.reservation_id)
            if row is None or row.status != "settled":
                total += usd(actual)
        return usd(total)

    async def set_limit(self, user_id: str, monthly_usd: float | Decimal) -> Decimal:
        """Set a user's monthly limit (takes effect at once, for the current month too)."""
        amount = usd(monthly_usd)
        if amount < 0:
            raise ValueError(f"a budget cannot be negative: {amount}")
        now = utcnow()
        stmt = self._insert(budget_limits).values(user_id=user_id, monthly_usd=amount, updated_at=now)
        stmt = stmt.on_conflict_do_update(
            index_elements=["user_id"], set_={"monthly_usd": amount, "updated_at": now}
        )
        async with self._tx() as conn:
            await conn.execute(stmt)
        self._known.forget(user_id)
        return amount

    # -- reads ------------------------------------------------------------------------------

    async def status(self, user_id: str, *, now: datetime | None = None) -> BudgetStatus:
        """The user's budget this month (a read; nothing is created)."""
        now = now or utcnow()
        month = month_of(now)
        row_q = sa.select(budget_months.c.spent, budget_months.c.reserved).where(
            budget_months.c.user_id == user_id, budget_months.c.month == month
        )
        self.reads += 1
        async with self.records.transaction() as conn:
            row = (await conn.execute(row_q)).first()
            limit = await self._limit(conn, user_id)
        spent, reserved = (row.spent, row.reserved) if row else (_ZERO, _ZERO)
        status = BudgetStatus(
            user_id=user_id,
            month=month,
            limit=limit,
            spent=spent,
            reserved=reserved,
            resets_at=next_month_start(month),
        )
        self._known.put(status)
        return status

    def known(self, user_id: str, *, now: datetime | None = None) -> BudgetStatus | None:
        """The user's month as this process last saw it (keel/budget/known.py: a hint, not the truth),
        or None when it has not seen it this month. No I/O."""
        return self._known.get(user_id, month_of(now or utcnow()))

    async def history(self, user_id: str, *, month: str | None = None, limit: int = 50) -> list[BudgetEntry]:
        """The user's ledger entries, newest first (optionally of one `YYYY-MM` month)."""
        query = sa.select(budget_entries).where(budget_entries.c.user_id == user_id)
        if month is not None:
            query = query.where(budget_entries.c.month == month)
        query = query.order_by(budget_entries.c.created_at.desc()).limit(limit)
        async with self.records.transaction() as conn:
            return [BudgetEntry(**r._mapping) for r in (await conn.execute(query)).all()]

    # -- internals --------------------------------------------------------------------------

    def _tx(self) -> Any:
        self.transactions += 1
        return self.records.transaction()

    async def _run(self, conn: AsyncConnection, statement: Statement) -> Any:
        self.statements += 1
        stmt, params = statement
        return await conn.execute(stmt, params)

    @property
    def _dialect(self) -> str:
        return self.records.engine.dialect.name

    def _insert(self, table: sa.Table) -> Any:
        dialect = self.records.engine.dialect.name
        return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)

    async def _limit(self, conn: AsyncConnection, user_id: str) -> Decimal:
        query = sa.select(budget_limits.c.monthly_usd).where(budget_limits.c.user_id == user_id)
        value = (await conn.execute(query)).scalar()
        return self.default if value is None else value

    async def _close(
        self,
        res: Reservation,
        status: str,
        actual: Decimal | None,
        reason: str | None,
        now: datetime,
        *,
        conn: AsyncConnection | None = None,
        from_released: bool = False,
    ) -> bool:
        if conn is None:
            async with self._tx() as tx:
                return await self._close(
                    res, status, actual, reason, now, conn=tx, from_released=from_released
                )
        was = ("reserved", "released") if from_released else ("reserved",)
        for before in was:  # a row goes from `before` to closed once: a second close matches nothing
            held = res.estimate if before == "reserved" else _ZERO  # a released entry holds nothing
            if self._dialect == "postgresql":
                stmt = close_pg(res, before, status, actual, reason, now, default=self.default)
                month_row = (await self._run(conn, stmt)).first()
            elif (await self._run(conn, close_entry(res, before, status, actual, reason, now))).rowcount:
                # SQLite: BEGIN IMMEDIATE holds the write lock, so no one moves it in between
                move = move_money(res, spent=actual or _ZERO, held=held, default=self.default, now=now)
                month_row = (await self._run(conn, move)).first()
            else:
                continue
            if month_row is not None:
                self._saw(res.user_id, res.month, month_row)
                return True
        return False

    def _saw(self, user_id: str, month: str, row: Any) -> None:
        self._known.put(
            BudgetStatus(
                user_id=user_id,
                month=month,
                limit=row.limit,
                spent=row.spent,
                reserved=row.reserved,
                resets_at=next_month_start(month),
            )
        )
