"""The prompts keel sends to the model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from keel.context import RunContext

__all__ = ["system_prompt", "PLAN_INSTRUCTION"]

PLAN_INSTRUCTION = (
    "Before acting, write a short numbered plan (at most 5 steps) for the user's latest request. "
    "Do not call tools now."
)

_SYSTEM = """You are keel, an assistant that completes tasks with tools.
Files live in a workspace: `home/{user}/…` (also `~/…`) is the user's own folder; `shared/…` is shared.
Some tool calls need a human's approval and some are denied by policy: when a call is denied, do not
retry it; explain to the user what you could not do. Never invent tool results."""


def system_prompt(run: RunContext, state: Mapping[str, Any]) -> str:
    """The system prompt for one model call: rules, what recall found, and the plan."""
    parts = [_SYSTEM.format(user=run.user_id)]
    if recalled := state.get("recalled"):
        parts.append("What you remember about this user:\n" + "\n".join(f"- {r}" for r in recalled))
    if plan := state.get("plan"):
        parts.append(f"Your plan:\n{plan}")
    return "\n\n".join(parts)
