"""Run cost cap: what a run spent plus the next call's bound stays within the per-run cap."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from keel.guards.guard import NextCall

__all__ = ["RunCostCap"]


@dataclass(frozen=True, slots=True)
class RunCostCap:
    """Stops the run when it reached its cap, or when the next call could take it past the cap."""

    cap: Decimal
    reason: str = "run_cost_cap"

    async def check(self, view: NextCall) -> str | None:
        spent, cap = view.spent, self.cap
        if spent >= cap > 0 or (cap == 0 and spent > 0):
            return f"this run has spent ${spent:.6f} of its ${cap:.6f} cap"
        if spent + view.bound > cap:
            return (
                f"this run has spent ${spent:.6f} of its ${cap:.6f} cap and the next call of "
                f"{view.model} needs up to ${view.bound:.6f}"
            )
        return None
