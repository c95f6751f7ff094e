"""Per-user monthly budgets: a ledger in the records database with reserve, settle and release."""

from keel.budget.ledger import BudgetLedger
from keel.budget.types import (
    BudgetEntry,
    BudgetExceeded,
    BudgetStatus,
    Reservation,
    month_of,
    next_month_start,
)

__all__ = [
    "BudgetEntry",
    "BudgetExceeded",
    "BudgetLedger",
    "BudgetStatus",
    "Reservation",
    "month_of",
    "next_month_start",
]
