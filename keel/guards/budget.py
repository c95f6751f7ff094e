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
    """Stops the run when the user's month has less left than the next call may cost."""

    ledger: BudgetLedger
    reason: str = "budget_exceeded"

    async def check(self, view: NextCall) -> str | None:
        status = await self.ledger.status(view.run.user_id)
        record_budget_remaining(f"user:{user_hash(view.run.user_id)}", float(status.remaining))
        if view.bound > status.remaining:
            return str(BudgetExceeded(status, view.bound))
        return None
