"""plan: the model writes a short plan for the task; decide re-uses it."""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime

from keel.context import RunContext
from keel.graphs.state import AgentState
from keel.memory.stores import MemoryBackends, fit_context
from keel.nodes._model_cache import cached_or_called
from keel.nodes._shared import (
    ModelCallFailed,
    ModelCalls,
    bounded,
    overrun_reason,
    thread_id_of,
    usage_update,
)
from keel.prompts import PLAN_INSTRUCTION, system_prompt
from keel.textsafe import safe_text

__all__ = ["make_plan"]


def make_plan(*, calls: ModelCalls, model: BaseChatModel, memory: MemoryBackends | None, enabled: bool):
    """The plan node (the primary `model`; `enabled=False` skips it). A failed plan call is not fatal:
    decide works without a plan."""
    model = bounded(calls, model)

    async def plan(state: AgentState, config: RunnableConfig, runtime: Runtime[RunContext]) -> dict[str, Any]:
        if not enabled:
            return {"plan": ""}
        messages = await fit_context(
            memory,
            thread_id_of(config),
            SystemMessage(system_prompt(runtime.context, state, calls.instructions)),
            state["messages"],
            model_name=calls.model_name,
            tail=[HumanMessage(PLAN_INSTRUCTION)],
        )
        try:
            call = await cached_or_called(
                calls, model, messages, state, config, run=runtime.context, model_name=calls.model_name
            )
        except ModelCallFailed:
            return {"plan": ""}
        if call.overrun:  # the guard edge ends the run before decide calls the model again
            reason = overrun_reason(calls, state, call)
            return {
                "plan": "",
                "terminated_reason": reason,
                "error": call.overrun,
                **usage_update(state, call),
            }
        # The plan is a plain str channel, inlined into the checkpoint's jsonb on PostgreSQL: no NUL.
        return {"plan": safe_text(call.message.text.strip()), **usage_update(state, call)}

    return plan
