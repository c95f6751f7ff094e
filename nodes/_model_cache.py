"""The model-response cache on the model call path of plan and decide: asked before the budget gate, filled
after a paid answer.

Why not a LangGraph node `CachePolicy` on decide: decide's step reserves money, settles what the run owes
and checks the turn's permissions; a node-level cache would skip all of that and replay a whole state
update, owed charges included. The cache sits around the model call only (keel.hotstate.model_cache, a
LangChain `BaseCache`): a hit reserves nothing, costs nothing, counts no tokens, and is counted in the
execution record's `cached_model_calls`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration
from langchain_core.runnables import Runnable, RunnableConfig

from keel.context import RunContext
from keel.hotstate.model_cache import ModelResponseCache, llm_string_of, prompt_of
from keel.nodes._shared import ModelCall, ModelCalls, call_model

__all__ = ["CachedModel", "CACHED_MARK", "cached_or_called"]

CACHED_MARK = "keel_cached"
"""`response_metadata[CACHED_MARK]` is True on an answer served from the cache."""


def _fresh(message: AIMessage) -> AIMessage:
    """A cached answer as a new message: its own id and tool call ids (a thread's tool results are keyed by
    tool call id, so a replayed id must never meet an earlier call's recorded result), no usage."""
    kwargs = {k: v for k, v in message.additional_kwargs.items() if k not in ("tool_calls", "function_call")}
    return AIMessage(
        content=message.content,
        name=message.name,
        additional_kwargs=kwargs,
        response_metadata={**message.response_metadata, CACHED_MARK: True},
        tool_calls=[{**tc, "id": f"call_{uuid.uuid4().hex[:24]}"} for tc in message.tool_calls],
        invalid_tool_calls=list(message.invalid_tool_calls),
        id=f"cached-{uuid.uuid4()}",
    )


class CachedModel:
    """One cache lookup and update for a (model, messages) pair of a run."""

    def __init__(
        self,
        cache: ModelResponseCache,
        model: Runnable,
        messages: Sequence[BaseMessage],
        *,
        run: RunContext,
        model_name: str,
    ) -> None:
        self.cache = cache
        params = getattr(model, "kwargs", {})  # the bound tools and max_tokens (nodes/_shared.bounded)
        self.prompt = prompt_of(messages)
        self.llm_string = llm_string_of(
            scope=run.tenant, version=run.version, model=model_name, params=params
        )

    async def lookup(self, state: Mapping[str, Any]) -> ModelCall | None:
        """The cached answer as a free call (what the run still owes stays owed), or None."""
        found = await self.cache.alookup(self.prompt, self.llm_string)
        first = found[0] if found else None
        if not isinstance(first, ChatGeneration) or not isinstance(first.message, AIMessage):
            return None
        owed = tuple(dict(o) for o in state.get("owed_charges") or [])
        message = _fresh(first.message)
        return ModelCall(message=message, input_tokens=0, output_tokens=0, cost=0.0, owed=owed, cached=True)

    async def remember(self, call: ModelCall) -> None:
        """Keep a paid answer (never one that overran its bound)."""
        if call.overrun is None and not call.cached:
            await self.cache.aupdate(self.prompt, self.llm_string, [ChatGeneration(message=call.message)])


async def cached_or_called(
    calls: ModelCalls,
    model: Runnable,
    messages: Sequence[BaseMessage],
    state: Mapping[str, Any],
    config: RunnableConfig,
    *,
    run: RunContext,
    model_name: str,
) -> ModelCall:
    """The cached answer when the cache has one; otherwise `call_model` (guarded, paid), then kept."""
    if calls.cache is None:
        return await call_model(calls, model, messages, state, config, run=run, model_name=model_name)
    cached = CachedModel(calls.cache, model, messages, run=run, model_name=model_name)
    if (hit := await cached.lookup(state)) is not None:
        return hit
    call = await call_model(calls, model, messages, state, config, run=run, model_name=model_name)
    await cached.remember(call)
    return call
