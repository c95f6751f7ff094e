"""Deadline: no model call once the run's deadline (in its state, set when the run starts) has passed."""

from __future__ import annotations

from dataclasses import dataclass

from keel.guards.guard import NextCall

__all__ = ["Deadline"]


@dataclass(frozen=True, slots=True)
class Deadline:
    """Stops the run when its deadline has passed (a run without one has none)."""

    reason: str = "timeout"

    async def check(self, view: NextCall) -> str | None:
        deadline = view.state.get("deadline")
        if deadline is not None and view.now >= deadline:
            return "the run's deadline passed"
        return None
