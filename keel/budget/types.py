"""Budget value objects: a reservation, a user's month, a ledger entry; the month arithmetic in UTC."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

__all__ = [
    "EntryKind",
    "EntryStatus",
    "Reservation",
    "BudgetStatus",
    "BudgetEntry",
    "BudgetExceeded",
    "month_of",
    "month_start",
    "next_month_start",
]

EntryKind = Literal["model", "tool"]
EntryStatus = Literal["reserved", "settled", "released"]


def month_of(when: datetime) -> str:
    """The ledger month of an instant, in UTC: `YYYY-MM`."""
    return when.astimezone(UTC).strftime("%Y-%m")


def month_start(month: str) -> datetime:
    """00:00 UTC on the first day of `YYYY-MM`."""
    year, mon = (int(part) for part in month.split("-"))
    return datetime(year, mon, 1, tzinfo=UTC)


def next_month_start(month: str) -> datetime:
    """When the budget of `month` resets: 00:00 UTC on the first day of the next month."""
    start = month_start(month)
    return (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Reservation:
    """Money held for one call until it is settled or released."""

    reservation_id: str
    user_id: str
    month: str
    kind: EntryKind
    name: str
    estimate: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetStatus:
    """A user's budget in one month."""

    user_id: str
    month: str
    limit: Decimal
    spent: Decimal
    reserved: Decimal
    resets_at: datetime

    @property
    def remaining(self) -> Decimal:
        """What may still be reserved this month (never negative)."""
        return max(self.limit - self.spent - self.reserved, Decimal(0))

    def as_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "month": self.month,
            "limit": str(self.limit),
            "spent": str(self.spent),
            "reserved": str(self.reserved),
            "remaining": str(self.remaining),
            "resets_at": self.resets_at.isoformat(),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetEntry:
    """One reservation as the ledger recorded it (row of `budget_entries`)."""

    reservation_id: str
    user_id: str
    month: str
    thread_id: str
    execution_id: str
    kind: str
    name: str
    estimate: Decimal
    actual: Decimal | None
    status: str
    reason: str | None
    created_at: datetime
    closed_at: datetime | None
    overrun: bool = False
    """The actual cost passed the reservation's bound (a provider that ignored `max_tokens`)."""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = (
                value.isoformat()
                if isinstance(value, datetime)
                else (str(value) if isinstance(value, Decimal) else value)
            )
        return out


class BudgetExceeded(Exception):
    """The next call does not fit the monthly budget; the message says what is left and when it resets."""

    def __init__(self, status: BudgetStatus, needed: Decimal) -> None:
        self.status, self.needed = status, needed
        super().__init__(
            f"monthly budget of user {status.user_id} exhausted: ${status.remaining:.6f} of "
            f"${status.limit:.6f} left for {status.month}, the next call needs up to ${needed:.6f}; "
            f"it resets {status.resets_at:%Y-%m-%d %H:%M} UTC"
        )
