"""What this process last saw of each user's month: the guard edge's budget check without a read.

Why: the guard edge before every model call read the ledger (one more transaction per call) only to
learn what the reservation a moment later finds out anyway. Every reservation and settlement returns
the month row as its write left it, so the ledger remembers it here and the edge checks against that.
It is a hint, never the authority: a pass on it may meet a refusal at the reservation (another process
spent the budget in between, which a read at the edge could not rule out either), and a refusal on it
is confirmed by a real read before the run stops. Bounded: the least recently seen users are dropped.
"""

from __future__ import annotations

from collections import OrderedDict

from keel.budget.types import BudgetStatus

__all__ = ["KnownMonths"]


class KnownMonths:
    """The last month status seen per user (at most `size` users, least recently seen dropped first)."""

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._seen: OrderedDict[str, BudgetStatus] = OrderedDict()

    def get(self, user_id: str, month: str) -> BudgetStatus | None:
        """The user's status in `month` as last seen, or None (never seen, or another month)."""
        status = self._seen.get(user_id)
        if status is None or status.month != month:
            return None
        self._seen.move_to_end(user_id)
        return status

    def put(self, status: BudgetStatus) -> None:
        self._seen[status.user_id] = status
        self._seen.move_to_end(status.user_id)
        while len(self._seen) > self._size:
            self._seen.popitem(last=False)

    def forget(self, user_id: str) -> None:
        """Drop what is known of a user (their limit changed)."""
        self._seen.pop(user_id, None)
