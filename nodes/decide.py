"""decide: the model, tools bound, chooses the next tool calls or answers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import SystemMessage
from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime

from keel.context import RunContext
from keel.graphs.state import AgentState, PendingCall
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
from keel.nodes._turn import check_turn
from keel.policies.watcher import PolicySource
from keel.prompts import system_prompt
from keel.tools.executor import ToolExecutor
from keel.tools.registry import ToolRegistry

__all__ = ["make_decide"]


def make_decide(
    *,
    calls: ModelCalls,
    models: Sequence[tuple[str, BaseChatModel]],
    registry: ToolRegistry,
    memory: MemoryBackends | None,
    policy: PolicySource,
    executor: ToolExecutor,
):
    """The decide node: `models` is the fallback chain, (name, model), the primary first.

    A turn whose every call the permission matrix allows (nodes/permission.py `check_turn`, in-process)
    leaves decide with its calls `allowed`, and the graph goes straight to tool: one step, one checkpoint
    fewer per tool turn. Any other turn leaves its calls `new` for permission_check."""
    schemas = registry.schemas()
    bound = [(name, bounded(calls, model.bind_tools(schemas))) for name, model in models]

    async def decide(
        state: AgentState, config: RunnableConfig, runtime: Runtime[RunContext]
    ) -> dict[str, Any]:
        system = SystemMessage(system_prompt(runtime.context, state, calls.instructions))
        steps = state.get("steps", 0) + 1
        try:
            name, model = bound[min(state.get("model_index", 0), len(bound) - 1)]
            messages = await fit_context(
                memory, thread_id_of(config), system, state["messages"], model_name=name, tools=schemas
            )
            call = await cached_or_called(
                calls, model, messages, state, config, run=runtime.context, model_name=name
            )
        except ModelCallFailed as exc:
            return {"steps": steps, "terminated_reason": exc.reason, "error": exc.detail}
        if call.overrun and call.message.tool_calls:  # paid for; its calls would spend past the bound
            reason = overrun_reason(calls, state, call)
            return {
                "steps": steps,
                "terminated_reason": reason,
                "error": call.overrun,
                **usage_update(state, call),
            }
        pending: list[PendingCall] = [
            {"id": tc["id"] or f"call_{steps}_{i}", "name": tc["name"], "args": tc["args"], "status": "new"}
            for i, tc in enumerate(call.message.tool_calls)
        ]
        pending += [
            {
                "id": bad.get("id") or f"invalid_{steps}_{i}",
                "name": bad.get("name") or "",
                "args": None,
                "status": "new",
            }
            for i, bad in enumerate(call.message.invalid_tool_calls)
        ]
        if pending:
            turn = await check_turn(
                {"pending": pending}, runtime.context, thread_id_of(config), policy.current(), executor
            )
            if turn.all_allowed:
                pending = turn.pending
        return {"messages": [call.message], "steps": steps, "pending": pending, **usage_update(state, call)}

    return decide
