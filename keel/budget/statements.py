"""The ledger's conditional writes: a reservation and a settlement, each as one statement.

Why one statement: a reservation that locked the user's month row (`SELECT ... FOR UPDATE`), read it,
then wrote it held that lock across three network round trips, so every model call of a user queued
behind the others. Here the condition travels with the write: the upsert of the month row adds the
estimate only `WHERE spent + reserved + estimate <= limit` (the user's limit, or the default, read in
the same statement), and PostgreSQL evaluates that on the row's latest committed version while it
holds the row lock for the statement alone. A row comes back only when the call fits; the entry is
inserted from that row in the same statement (a data-modifying CTE), so a refusal writes nothing.

SQLite has no data-modifying CTEs: its reservation is the same upsert followed by the entry insert,
and its settlement two guarded updates, all inside keel's `BEGIN IMMEDIATE` (one writer at a time, no
network): the same outcome, one transaction.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from keel.budget.tables import budget_entries, budget_limits, budget_months
from keel.budget.types import Reservation

__all__ = ["month_upsert", "entry_insert", "reserve_pg", "close_entry", "close_pg", "move_money"]

_USD = budget_months.c.spent.type


def _money(value: Decimal) -> Any:
    return sa.literal(value, _USD)


def _limit(user_id: str, default: Decimal) -> Any:
    """The user's own monthly limit, else the default, as an expression of the statement."""
    own = sa.select(budget_limits.c.monthly_usd).where(budget_limits.c.user_id == user_id)
    return sa.func.coalesce(own.scalar_subquery(), _money(default))


def month_upsert(dialect: str, res: Reservation, *, default: Decimal, now: datetime) -> Any:
    """Add `res.estimate` to the month's `reserved` when it fits; RETURNING a row only then.

    A missing month row is inserted (with the estimate reserved) only if the estimate fits the limit;
    an existing one is updated only if `spent + reserved + estimate <= limit`. A zero estimate always
    fits (as `BudgetStatus.remaining` never goes below zero)."""
    m = budget_months.c
    limit = _limit(res.user_id, default)
    source = sa.select(
        sa.literal(res.user_id, m.user_id.type),
        sa.literal(res.month, m.month.type),
        _money(Decimal(0)),
        _money(res.estimate),
        sa.literal(now, m.updated_at.type),
    ).where(_money(res.estimate) <= limit)
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(budget_months)
    stmt = insert.from_select(["user_id", "month", "spent", "reserved", "updated_at"], source)
    fits = m.spent + m.reserved + _money(res.estimate) <= limit
    return stmt.on_conflict_do_update(
        index_elements=[m.user_id, m.month],
        set_={"reserved": m.reserved + stmt.excluded.reserved, "updated_at": stmt.excluded.updated_at},
        where=None if res.estimate == 0 else fits,
    ).returning(m.spent, m.reserved, limit.label("limit"))


def _entry_values(res: Reservation, thread_id: str, execution_id: str, now: datetime) -> dict[str, Any]:
    return {
        "reservation_id": res.reservation_id,
        "user_id": res.user_id,
        "month": res.month,
        "thread_id": thread_id,
        "execution_id": execution_id,
        "kind": res.kind,
        "name": res.name,
        "estimate": res.estimate,
        "status": "reserved",
        "created_at": now,
    }


def entry_insert(res: Reservation, thread_id: str, execution_id: str, now: datetime) -> Any:
    """The reservation's entry (SQLite: run after the upsert returned its row)."""
    return sa.insert(budget_entries).values(**_entry_values(res, thread_id, execution_id, now))


def reserve_pg(
    res: Reservation, thread_id: str, execution_id: str, *, default: Decimal, now: datetime
) -> Any:
    """PostgreSQL: the month upsert and the entry insert as one statement. A row back (the month as
    the reservation left it: spent, reserved, limit) means reserved; none means it did not fit."""
    held = month_upsert("postgresql", res, default=default, now=now).cte("held")
    values = _entry_values(res, thread_id, execution_id, now)
    e = budget_entries.c
    source = sa.select(*[sa.literal(v, e[k].type).label(k) for k, v in values.items()]).select_from(held)
    # PostgreSQL runs a data-modifying CTE to completion whether or not the main query reads it
    entry = sa.insert(budget_entries).from_select(list(values), source).returning(e.reservation_id)
    entry_cte = entry.cte("entry")
    return sa.select(held.c.spent, held.c.reserved, held.c.limit).add_cte(entry_cte)


def _closed_values(
    status: str, actual: Decimal | None, reason: str | None, overrun: bool, now: datetime
) -> dict[str, Any]:
    return {"status": status, "actual": actual, "reason": reason, "overrun": overrun, "closed_at": now}


def close_entry(
    res: Reservation, before: str, status: str, actual: Decimal | None, reason: str | None, now: datetime
) -> Any:
    """Close the entry if it is still `before` (SQLite; its rowcount says whether it was)."""
    e = budget_entries.c
    overrun = actual is not None and actual > res.estimate
    return (
        sa.update(budget_entries)
        .where(e.reservation_id == res.reservation_id, e.status == before)
        .values(**_closed_values(status, actual, reason, overrun, now))
    )


def move_money(res: Reservation, *, spent: Decimal, held: Decimal, default: Decimal, now: datetime) -> Any:
    """Charge `spent` to the month and give back `held` of its reserved amount; RETURNING the month."""
    m = budget_months.c
    return (
        sa.update(budget_months)
        .where(m.user_id == res.user_id, m.month == res.month)
        .values(spent=m.spent + _money(spent), reserved=m.reserved - _money(held), updated_at=now)
        .returning(m.spent, m.reserved, _limit(res.user_id, default).label("limit"))
    )


def close_pg(
    res: Reservation,
    before: str,
    status: str,
    actual: Decimal | None,
    reason: str | None,
    now: datetime,
    *,
    default: Decimal,
) -> Any:
    """PostgreSQL: close the entry if it is still `before` and move its money, as one statement.

    A row back means this call closed it. A concurrent second close waits on the entry's row, then
    finds it no longer `before` and matches nothing (PostgreSQL re-checks the condition on the row's
    new version). A `released` entry settled late holds nothing, so only its actual cost moves."""
    closed = (
        close_entry(res, before, status, actual, reason, now)
        .returning(budget_entries.c.user_id, budget_entries.c.month)
        .cte("closed")
    )
    held = res.estimate if before == "reserved" else Decimal(0)
    move = move_money(res, spent=actual or Decimal(0), held=held, default=default, now=now)
    m = budget_months.c
    return move.where(m.user_id == closed.c.user_id, m.month == closed.c.month)
