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

Each statement is built once per shape (SQLAlchemy builds a CTE like this in about a millisecond of Python)
with named bind parameters, and sent with this call's values: `(statement, params)` pairs.
"""

from __future__ import annotations

import functools
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from keel.budget.tables import budget_entries, budget_limits, budget_months
from keel.budget.types import Reservation

__all__ = ["month_upsert", "entry_insert", "reserve_pg", "close_entry", "close_pg", "move_money", "Statement"]

Statement = tuple[Any, dict[str, Any]]
"""A statement built once and the values of this call for its bind parameters."""

_USD = budget_months.c.spent.type
_ENTRY_FIELDS = (
    "reservation_id",
    "user_id",
    "month",
    "thread_id",
    "execution_id",
    "kind",
    "name",
    "estimate",
    "status",
    "created_at",
)


def _p(name: str, column: sa.Column[Any]) -> Any:
    return sa.bindparam(name, type_=column.type)


def _limit() -> Any:
    """The user's own monthly limit, else the default, as an expression of the statement."""
    own = sa.select(budget_limits.c.monthly_usd).where(
        budget_limits.c.user_id == _p("k_limit_user", budget_limits.c.user_id)
    )
    return sa.func.coalesce(own.scalar_subquery(), sa.bindparam("k_default", type_=_USD))


@functools.cache
def _month_upsert(dialect: str, zero: bool) -> Any:
    m = budget_months.c
    limit = _limit()
    estimate = sa.bindparam("k_estimate", type_=_USD)
    source = sa.select(
        _p("k_user", m.user_id),
        _p("k_month", m.month),
        sa.literal(Decimal(0), _USD),
        estimate,
        _p("k_now", m.updated_at),
    ).where(estimate <= limit)
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(budget_months)
    stmt = insert.from_select(["user_id", "month", "spent", "reserved", "updated_at"], source)
    fits = m.spent + m.reserved + estimate <= limit
    return stmt.on_conflict_do_update(
        index_elements=[m.user_id, m.month],
        set_={"reserved": m.reserved + stmt.excluded.reserved, "updated_at": stmt.excluded.updated_at},
        where=None if zero else fits,
    ).returning(m.spent, m.reserved, limit.label("limit"))


def _month_params(res: Reservation, default: Decimal, now: datetime) -> dict[str, Any]:
    return {
        "k_user": res.user_id,
        "k_limit_user": res.user_id,
        "k_month": res.month,
        "k_estimate": res.estimate,
        "k_now": now,
        "k_default": default,
    }


def month_upsert(dialect: str, res: Reservation, *, default: Decimal, now: datetime) -> Statement:
    """Add `res.estimate` to the month's `reserved` when it fits; RETURNING a row only then.

    A missing month row is inserted (with the estimate reserved) only if the estimate fits the limit;
    an existing one is updated only if `spent + reserved + estimate <= limit`. A zero estimate always
    fits (as `BudgetStatus.remaining` never goes below zero)."""
    return _month_upsert(dialect, res.estimate == 0), _month_params(res, default, now)


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


@functools.cache
def _entry_insert() -> Any:
    e = budget_entries.c
    return sa.insert(budget_entries).values(
        {k: sa.bindparam(f"e_{k}", type_=e[k].type) for k in _ENTRY_FIELDS}
    )


def _entry_params(res: Reservation, thread_id: str, execution_id: str, now: datetime) -> dict[str, Any]:
    return {f"e_{k}": v for k, v in _entry_values(res, thread_id, execution_id, now).items()}


def entry_insert(res: Reservation, thread_id: str, execution_id: str, now: datetime) -> Statement:
    """The reservation's entry (SQLite: run after the upsert returned its row)."""
    return _entry_insert(), _entry_params(res, thread_id, execution_id, now)


@functools.cache
def _reserve_pg(zero: bool) -> Any:
    held = _month_upsert("postgresql", zero).cte("held")
    e = budget_entries.c
    source = sa.select(
        *[sa.bindparam(f"e_{k}", type_=e[k].type).label(k) for k in _ENTRY_FIELDS]
    ).select_from(held)
    # PostgreSQL runs a data-modifying CTE to completion whether or not the main query reads it
    entry = sa.insert(budget_entries).from_select(list(_ENTRY_FIELDS), source).returning(e.reservation_id)
    return sa.select(held.c.spent, held.c.reserved, held.c.limit).add_cte(entry.cte("entry"))


def reserve_pg(
    res: Reservation, thread_id: str, execution_id: str, *, default: Decimal, now: datetime
) -> Statement:
    """PostgreSQL: the month upsert and the entry insert as one statement. A row back (the month as
    the reservation left it: spent, reserved, limit) means reserved; none means it did not fit."""
    params = _month_params(res, default, now) | _entry_params(res, thread_id, execution_id, now)
    return _reserve_pg(res.estimate == 0), params


@functools.cache
def _close_entry() -> Any:
    e = budget_entries.c
    return (
        sa.update(budget_entries)
        .where(
            e.reservation_id == _p("c_reservation", e.reservation_id), e.status == _p("c_before", e.status)
        )
        .values(
            status=_p("c_status", e.status),
            actual=_p("c_actual", e.actual),
            reason=_p("c_reason", e.reason),
            overrun=_p("c_overrun", e.overrun),
            closed_at=_p("c_now", e.closed_at),
        )
    )


def _close_params(
    res: Reservation, before: str, status: str, actual: Decimal | None, reason: str | None, now: datetime
) -> dict[str, Any]:
    return {
        "c_reservation": res.reservation_id,
        "c_before": before,
        "c_status": status,
        "c_actual": actual,
        "c_reason": reason,
        "c_overrun": actual is not None and actual > res.estimate,
        "c_now": now,
    }


def close_entry(
    res: Reservation, before: str, status: str, actual: Decimal | None, reason: str | None, now: datetime
) -> Statement:
    """Close the entry if it is still `before` (SQLite; its rowcount says whether it was)."""
    return _close_entry(), _close_params(res, before, status, actual, reason, now)


@functools.cache
def _move_money(after_close: bool) -> Any:
    m = budget_months.c
    stmt = sa.update(budget_months).values(
        spent=m.spent + sa.bindparam("k_spent", type_=_USD),
        reserved=m.reserved - sa.bindparam("k_held", type_=_USD),
        updated_at=_p("k_now", m.updated_at),
    )
    if after_close:  # PostgreSQL: the month of the entry the CTE closed (none closed: nothing moves)
        closed = _close_entry().returning(budget_entries.c.user_id, budget_entries.c.month).cte("closed")
        stmt = stmt.where(m.user_id == closed.c.user_id, m.month == closed.c.month)
    else:
        stmt = stmt.where(m.user_id == _p("k_user", m.user_id), m.month == _p("k_month", m.month))
    return stmt.returning(m.spent, m.reserved, _limit().label("limit"))


def _move_params(
    res: Reservation, spent: Decimal, held: Decimal, default: Decimal, now: datetime
) -> dict[str, Any]:
    return {
        "k_user": res.user_id,
        "k_limit_user": res.user_id,
        "k_month": res.month,
        "k_spent": spent,
        "k_held": held,
        "k_default": default,
        "k_now": now,
    }


def move_money(
    res: Reservation, *, spent: Decimal, held: Decimal, default: Decimal, now: datetime
) -> Statement:
    """Charge `spent` to the month and give back `held` of its reserved amount; RETURNING the month."""
    return _move_money(False), _move_params(res, spent, held, default, now)


def close_pg(
    res: Reservation,
    before: str,
    status: str,
    actual: Decimal | None,
    reason: str | None,
    now: datetime,
    *,
    default: Decimal,
) -> Statement:
    """PostgreSQL: close the entry if it is still `before` and move its money, as one statement.

    A row back means this call closed it. A concurrent second close waits on the entry's row, then
    finds it no longer `before` and matches nothing (PostgreSQL re-checks the condition on the row's
    new version). A `released` entry settled late holds nothing, so only its actual cost moves."""
    held = res.estimate if before == "reserved" else Decimal(0)
    params = _close_params(res, before, status, actual, reason, now) | _move_params(
        res, actual or Decimal(0), held, default, now
    )
    return _move_money(True), params
