"""The guard rails' verdict on one arm's window of finished runs: a reason to stop it, or None."""

from __future__ import annotations

from keel.records.rollouts import ArmWindow
from keel.rollout.spec import GuardRails

__all__ = ["judge"]


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def judge(window: ArmWindow, rails: GuardRails) -> str | None:
    """Why the arm must stop (the first threshold it is past, with the figures), or None: fewer than
    `min_runs` finished runs in the window, or every threshold kept."""
    if window.runs < rails.min_runs:
        return None
    over = f"over {window.runs} runs in the last {_span(rails.window_s)}"
    rate = window.success_rate
    if rails.min_success_rate is not None and rate is not None and rate < rails.min_success_rate:
        return f"success rate {rate:.1%} is below {rails.min_success_rate:.1%} {over}"
    failing = window.tool_failure_rate
    if (
        rails.max_tool_failure_rate is not None
        and failing is not None
        and failing > rails.max_tool_failure_rate
    ):
        return (
            f"tool failure rate {failing:.1%} ({window.tool_failures} of {window.tool_calls} calls) is above "
            f"{rails.max_tool_failure_rate:.1%} {over}"
        )
    cost = window.cost_per_run
    if rails.max_cost_per_run_usd is not None and cost is not None and cost > rails.max_cost_per_run_usd:
        return f"cost per run ${cost:.4f} is above ${rails.max_cost_per_run_usd:.4f} {over}"
    return None
