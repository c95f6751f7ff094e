"""The prompts keel sends to the model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage

from keel.context import RunContext

__all__ = ["system_prompt", "PLAN_INSTRUCTION", "continue_message", "is_continuation", "original_request"]

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


_CONTINUES = "keel_continues"
"""Marks the human turn `keel resume` adds after an early stop (in `additional_kwargs`; not sent as text)."""


def continue_message(task: str) -> HumanMessage:
    """The turn that resumes a run stopped early: it names the original task, so the model carries it on."""
    text = "Continue the task from where you stopped."
    if task:
        text += f" The task was: {task}"
    return HumanMessage(text, additional_kwargs={_CONTINUES: True})


def is_continuation(message: BaseMessage) -> bool:
    """True for a turn made by `continue_message`."""
    return isinstance(message, HumanMessage) and bool(message.additional_kwargs.get(_CONTINUES))


def original_request(messages: Sequence[BaseMessage]) -> tuple[int, str]:
    """The index and text of the latest human request that is not a `keel resume` continuation."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if isinstance(message, HumanMessage) and not is_continuation(message):
            return index, message.text
    return -1, ""
