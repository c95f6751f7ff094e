"""fallback: the run cannot go on; end it with a clear status and an honest answer."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime

from keel.context import RunContext
from keel.graphs.state import AgentState
from keel.guards import Guards, NoGuards
from keel.nodes._shared import thread_id_of
from keel.redaction import redact_text
from keel.settings import Settings
from keel.stop_reasons import stop_reason, stop_text

__all__ = ["make_fallback", "fallback_message"]


def fallback_message(reason: str, thread: str, settings: Settings, error: str | None = None) -> str:
    """What the user is told when a run ends early: the words of `reason`'s row in keel/stop_reasons.py."""
    limits = {
        "max_steps": settings.max_steps,
        "run_timeout_s": settings.run_timeout_s,
        "run_cost_cap": settings.run_cost_cap,
    }
    return stop_text(reason, thread=thread, error=redact_text(error) if error else None, limits=limits)


def make_fallback(*, guards: Guards | NoGuards, settings: Settings):
    """The fallback node: the next model of the chain when the model is unavailable, else a canned answer."""

    async def fallback(
        state: AgentState, config: RunnableConfig, runtime: Runtime[RunContext]
    ) -> dict[str, Any]:
        # Every route here names its reason: decide sets it on a model failure, and the guard edges send
        # it along with the route (graphs/edges.py), so it is never guessed again here.
        reason, error = state.get("terminated_reason") or "llm_unavailable", state.get("error")
        if stop_reason(reason).falls_back and (index := await guards.next_model(state)) is not None:
            return {"model_index": index, "terminated_reason": None, "error": None}
        text = fallback_message(reason, thread_id_of(config), settings, error)
        return {
            "terminated_reason": reason,
            "error": error,
            "messages": [AIMessage(content=text, name="keel-fallback")],
        }

    return fallback
