"""Steps: a run takes at most `max_steps` model turns."""

from __future__ import annotations

from dataclasses import dataclass

from keel.guards.guard import NextCall

__all__ = ["StepLimit"]


@dataclass(frozen=True, slots=True)
class StepLimit:
    """Stops the run before a model turn past `max_steps`."""

    max_steps: int
    reason: str = "max_steps"

    async def check(self, view: NextCall) -> str | None:
        steps = view.state.get("steps", 0)
        if steps >= self.max_steps:
            return f"the run took {steps} of its {self.max_steps} steps"
        return None
