"""Per-turn call cap: one model turn runs at most `limit` tool calls; the rest are refused."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from keel.guards.guard import ProposedCall

__all__ = ["TurnCallCap"]


@dataclass(frozen=True, slots=True)
class TurnCallCap:
    """Refuses a turn's calls past the `limit`-th (a call re-checked outside its turn has no position)."""

    limit: int
    reason: str = "too_many_calls"

    async def check(self, call: ProposedCall) -> str | None:
        if call.position is not None and call.position > self.limit:
            return f"this turn asked for more than {self.limit} tool calls; call #{call.position} was not run"
        return None
