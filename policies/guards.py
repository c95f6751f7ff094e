"""The run guards: read-only checks made before every model call. The first failure names the reason."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["RunLimits", "first_failure"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunLimits:
    """Per-run bounds (from settings)."""

    max_steps: int
    run_cost_cap: float


def first_failure(state: Mapping[str, Any], limits: RunLimits, now: float | None = None) -> str | None:
    """The terminated_reason of the first guard that fails, or None when the run may go on.

    Order: steps, deadline, run cost cap. Budgets and circuit breakers join here in order after these.
    """
    if state.get("steps", 0) >= limits.max_steps:
        return "max_steps"
    deadline = state.get("deadline")
    if deadline is not None and (now if now is not None else time.time()) >= deadline:
        return "timeout"
    if state.get("run_cost", 0.0) >= limits.run_cost_cap > 0 or (
        limits.run_cost_cap == 0 and state.get("run_cost", 0.0) > 0
    ):
        return "run_cost_cap"
    return None
