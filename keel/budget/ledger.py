"""The budget ledger: per-user monthly limits, reservations under a row lock, settle and release.

One transaction per operation. The user's month row is locked first (`SELECT ... FOR UPDATE` on
PostgreSQL; on SQLite keel's `BEGIN IMMEDIATE` already serialises writers), so concurrent
reservations from any number of processes see each other and `spent + reserved` never passes the
limit. Months are UTC calendar months; a new month starts with nothing spent.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

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
    ) -> Reservation:
        """Hold `estimate` for one call, or raise BudgetExceeded saying what is left and when it resets."""
        now = now or utcnow()
        month = month_of(now)
        estimate = usd(estimate)
        async with self._tx() as conn:
            status = await self._locked_status(conn, user_id, month, now)
            if estimate > status.remaining:
                raise BudgetExceeded(status, estimate)
            res = Reservation(
                reservation_id=uuid.uuid4().hex,
                user_id=user_id,
                month=month,
                kind=kind,
                name=name,
                estimate=estimate,
            )
            await conn.execute(
                sa.insert(budget_entries).values(
                    reservation_id=res.reservation_id,
                    user_id=user_id,
                    month=month,
                    thread_id=thread_id,
                    execution_id=execution_id,
                    kind=kind,
                    name=name,
                    estimate=estimate,
                    status="reserved",
                    created_at=now,
                )
            )
            await self._add(conn, user_id, month, reserved=estimate, now=now)
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
        actual = usd(actual)
        reason = None
        if actual > res.estimate:
            reason = f"overrun: ${actual:.8f} charged over the reserved bound of ${res.estimate:.8f}"
        return await self._close(
            res, "settled", actual, reason, now or utcnow(), conn=conn, from_released=late
        )

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

    async def spent_by(self, execution_id: str) -> Decimal:
        """What an execution was charged: the sum of its settled entries. After a crash this includes a
        call that answered and was settled before its step's checkpoint (the resumed run asked again),
        which the run's own state never saw."""
        e = budget_entries.c
        query = sa.select(sa.func.coalesce(sa.func.sum(e.actual), 0)).where(
            e.execution_id == execution_id, e.status == "settled"
        )
        async with self.records.transaction() as conn:
            return usd((await conn.execute(query)).scalar() or 0)

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
        return amount

    # -- reads ------------------------------------------------------------------------------

    async def status(self, user_id: str, *, now: datetime | None = None) -> BudgetStatus:
        """The user's budget this month (a read; nothing is created)."""
        now = now or utcnow()
        month = month_of(now)
        row_q = sa.select(budget_months.c.spent, budget_months.c.reserved).where(
            budget_months.c.user_id == user_id, budget_months.c.month == month
        )
        async with self.records.transaction() as conn:
            row = (await conn.execute(row_q)).first()
            limit = await self._limit(conn, user_id)
        spent, reserved = (row.spent, row.reserved) if row else (_ZERO, _ZERO)
        return BudgetStatus(
            user_id=user_id,
            month=month,
            limit=limit,
            spent=spent,
            reserved=reserved,
            resets_at=next_month_start(month),
        )

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

    def _insert(self, table: sa.Table) -> Any:
        dialect = self.records.engine.dialect.name
        return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)

    async def _limit(self, conn: AsyncConnection, user_id: str) -> Decimal:
        query = sa.select(budget_limits.c.monthly_usd).where(budget_limits.c.user_id == user_id)
        value = (await conn.execute(query)).scalar()
        return self.default if value is None else value

    async def _locked_status(
        self, conn: AsyncConnection, user_id: str, month: str, now: datetime
    ) -> BudgetStatus:
        """Create the month row if missing, then lock it; the limit is read under the same lock."""
        await conn.execute(
            self._insert(budget_months)
            .values(user_id=user_id, month=month, spent=_ZERO, reserved=_ZERO, updated_at=now)
            .on_conflict_do_nothing()
        )
        query = (
            sa.select(budget_months.c.spent, budget_months.c.reserved)
            .where(budget_months.c.user_id == user_id, budget_months.c.month == month)
            .with_for_update()
        )
        row = (await conn.execute(query)).one()
        return BudgetStatus(
            user_id=user_id,
            month=month,
            limit=await self._limit(conn, user_id),
            spent=row.spent,
            reserved=row.reserved,
            resets_at=next_month_start(month),
        )

    async def _add(
        self, conn: AsyncConnection, user_id: str, month: str, *, now: datetime, spent=_ZERO, reserved=_ZERO
    ) -> None:
        c = budget_months.c
        await conn.execute(
            sa.update(budget_months)
            .where(c.user_id == user_id, c.month == month)
            .values(spent=c.spent + spent, reserved=c.reserved + reserved, updated_at=now)
        )

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
        await self._locked_status(conn, res.user_id, res.month, now)
        e = budget_entries.c
        was = ("reserved", "released") if from_released else ("reserved",)
        before = (
            await conn.execute(
                sa.select(e.status).where(e.reservation_id == res.reservation_id, e.status.in_(was))
            )
        ).scalar()
        if before is None:
            return False
        overrun = actual is not None and actual > res.estimate
        await conn.execute(
            sa.update(budget_entries)
            .where(e.reservation_id == res.reservation_id, e.status == before)
            .values(status=status, actual=actual, reason=reason, overrun=overrun, closed_at=now)
        )
        held = res.estimate if before == "reserved" else _ZERO  # a released entry holds nothing now
        await self._add(conn, res.user_id, res.month, now=now, spent=actual or _ZERO, reserved=-held)
        return True
