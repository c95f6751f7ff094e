"""The prompts keel sends to the model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage

from keel.context import RunContext

__all__ = [
    "system_prompt",
    "builtin_instructions",
    "PLACEHOLDERS",
    "PromptFileError",
    "load_instructions",
    "fill_placeholders",
    "PLAN_INSTRUCTION",
    "continue_message",
    "is_continuation",
    "original_request",
]

PLAN_INSTRUCTION = (
    "Before acting, write a short numbered plan (at most 5 steps) for the user's latest request. "
    "Do not call tools now."
)

_SYSTEM = """You are keel, an assistant that completes tasks with tools.
Files live in a workspace: `home/{user}/…` (also `~/…`) is the user's own folder; `shared/…` is shared.
Some tool calls need a human's approval and some are denied by policy: when a call is denied, do not
retry it; explain to the user what you could not do. Never invent tool results."""


def builtin_instructions() -> str:
    """keel's own system instructions (used when the project gives none), placeholders unfilled."""
    return _SYSTEM


PLACEHOLDERS = ("user", "role", "tenant")
"""The names substituted in system instructions (`{user}` is the run's user id, and so on). Nothing else is:
a prompt's other braces (`{json}`, `{{`, a lone `{`) reach the model as written."""


class PromptFileError(ValueError):
    """A system instructions file keel cannot use (unreadable, not UTF-8, empty)."""


def load_instructions(path: Path) -> str:
    """The text of a system instructions file, read once at start; PromptFileError (one line) otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptFileError(f"cannot read the prompt file {path}: {exc}") from None
    if not text.strip():
        raise PromptFileError(f"the prompt file {path} is empty")
    return text.strip()


def fill_placeholders(text: str, run: RunContext) -> str:
    """`text` with each of PLACEHOLDERS replaced by the run's value; never str.format on a user's text."""
    for name in PLACEHOLDERS:
        text = text.replace("{" + name + "}", getattr(run, _FIELDS[name]))
    return text


_FIELDS = {"user": "user_id", "role": "role", "tenant": "tenant"}


def system_prompt(run: RunContext, state: Mapping[str, Any], instructions: str | None = None) -> str:
    """The system prompt for one model call: the instructions (the project's `agent.prompt`, else keel's
    built-in ones), what recall found, and the plan."""
    parts = [fill_placeholders(instructions or _SYSTEM, run)]
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
