"""Budget: the user's monthly budget (the durable ledger) has room for the next call's bound."""

from __future__ import annotations

from dataclasses import dataclass

from keel.budget import BudgetExceeded, BudgetLedger
from keel.guards.guard import NextCall
from keel.observability.logging import user_hash
from keel.observability.metrics import record_budget_remaining

__all__ = ["Budget"]


@dataclass(frozen=True, slots=True)
class Budget:
    """Stops the run when the user's month has less left than the next call may cost.

    The reservation the call then makes is the check that holds (one conditional statement that
    refuses what does not fit). So this edge reads no ledger when the month as this process last saw
    it (what the last reservation or settlement returned) has room: a model call costs the ledger one
    transaction to reserve, not a read and then a reservation. When that says no room, or this process
    has not seen the month yet, the ledger is read, and a stop is only ever decided on a fresh read."""

    ledger: BudgetLedger
    reason: str = "budget_exceeded"

    async def check(self, view: NextCall) -> str | None:
        user = view.run.user_id
        status = self.ledger.known(user)
        if status is None or view.bound > status.remaining:
            status = await self.ledger.status(user)
        record_budget_remaining(f"user:{user_hash(user)}", float(status.remaining))
        if view.bound > status.remaining:
            return str(BudgetExceeded(status, view.bound))
        return None
