"""fallback: the run cannot go on; end it with a clear status and an honest answer."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime

from keel.context import RunContext
from keel.graphs.state import AgentState
from keel.guards import Guards
from keel.nodes._shared import thread_id_of
from keel.redaction import redact_text
from keel.settings import Settings

__all__ = ["make_fallback", "fallback_message"]


def fallback_message(reason: str, thread: str, settings: Settings, error: str | None = None) -> str:
    """What the user is told when a run ends early, by reason."""
    resume = f"Progress is saved: resume with thread {thread}."
    if reason == "max_steps":
        return f"I reached the limit of {settings.max_steps} steps before finishing. {resume}"
    if reason == "timeout":
        return f"I ran out of time ({settings.run_timeout_s:.0f} s for a run) before finishing. {resume}"
    if reason == "run_cost_cap":
        return f"This run reached its cost cap of ${settings.run_cost_cap:.4f}. {resume}"
    if reason == "budget_exceeded":
        return f"I stopped because {error or 'your budget has no room for another step'}. {resume}"
    if reason == "guard_unavailable":
        return (
            f"I stopped because a safety check could not run ({redact_text(error or 'unknown cause')}). "
            f"Progress is saved: resume with thread {thread} once it is back."
        )
    cause = f" ({redact_text(error)})" if error else ""
    return (
        f"The assistant's model is unavailable right now{cause}, so I could not finish your request. "
        f"{resume} Please try again later."
    )


def make_fallback(*, guards: Guards | None, settings: Settings):
    """The fallback node: the next model of the chain when the model is unavailable, else a canned answer."""

    async def fallback(
        state: AgentState, config: RunnableConfig, runtime: Runtime[RunContext]
    ) -> dict[str, Any]:
        # Every route here names its reason: decide sets it on a model failure, and the guard edges send
        # it along with the route (graphs/edges.py), so it is never guessed again here.
        reason, error = state.get("terminated_reason") or "llm_unavailable", state.get("error")
        if reason == "llm_unavailable" and guards and (index := await guards.next_model(state)) is not None:
            return {"model_index": index, "terminated_reason": None, "error": None}
        text = fallback_message(reason, thread_id_of(config), settings, error)
        return {
            "terminated_reason": reason,
            "error": error,
            "messages": [AIMessage(content=text, name="keel-fallback")],
        }

    return fallback
