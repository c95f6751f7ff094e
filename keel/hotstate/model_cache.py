"""The model-response cache: LangChain's `BaseCache` interface over a keel `CacheStore`.

LangChain's contract: `(prompt, llm_string) -> [ChatGeneration]`. keel fills it as follows:
- `prompt` (`prompt_of`): the messages sent, as canonical JSON of what the model reads (type, content, name,
  tool calls' names and arguments); message ids and tool call ids are left out, so two runs that say the same
  thing share an answer.
- `llm_string` (`llm_string_of`): the scope (the tenant: no answer crosses tenants), the agent version id (a
  new version misses), the model's name and its bound parameters (tools, max_tokens).
The stored key is a hash of both (nothing readable lands in the store).

The model call path (nodes/_model_cache.py) asks the cache *before* the budget gate, so a hit reserves
nothing; LangChain's own per-model `cache=` hook would run inside the call, after the reservation. Only the
async methods are implemented (keel's stores are async); the sync ones raise.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.messages import AIMessage, BaseMessage, message_to_dict, messages_from_dict
from langchain_core.outputs import ChatGeneration

from keel.hotstate.cache_store import CacheStore
from keel.hotstate.types import HotStateUnavailable

__all__ = ["ModelResponseCache", "prompt_of", "llm_string_of"]

_log = logging.getLogger(__name__)
_KIND = "model:"


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _message(m: BaseMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"type": m.type, "content": m.content}
    if m.name:
        out["name"] = m.name
    if isinstance(m, AIMessage) and m.tool_calls:
        out["tool_calls"] = [[tc["name"], tc["args"]] for tc in m.tool_calls]
    return out


def prompt_of(messages: Sequence[BaseMessage]) -> str:
    """The messages as the cache compares them: what the model reads, without ids."""
    return _canonical([_message(m) for m in messages])


def llm_string_of(*, scope: str, version: str, model: str, params: Mapping[str, Any]) -> str:
    """The configuration half of the key: scope (tenant), agent version, model name, bound parameters."""
    return _canonical({"scope": scope, "version": version, "model": model, "params": dict(params)})


class ModelResponseCache(BaseCache):
    """Model answers by (prompt, llm_string), each kept `ttl_s` seconds. A store outage is a miss."""

    def __init__(self, store: CacheStore, *, ttl_s: float) -> None:
        self.store = store
        self.ttl_s = ttl_s

    @staticmethod
    def key(prompt: str, llm_string: str) -> str:
        return _KIND + hashlib.sha256(f"{llm_string}\x00{prompt}".encode()).hexdigest()

    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        try:
            raw = await self.store.get(self.key(prompt, llm_string))
        except HotStateUnavailable as exc:
            _log.warning("model cache lookup failed (treated as a miss): %s", exc)
            return None
        if raw is None:
            return None
        return [ChatGeneration(message=m) for m in messages_from_dict(json.loads(raw))]

    async def aupdate(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        messages = [g.message for g in return_val if isinstance(g, ChatGeneration)]
        if not messages or len(messages) != len(return_val):
            return
        try:
            await self.store.set(
                self.key(prompt, llm_string), _canonical([message_to_dict(m) for m in messages]), self.ttl_s
            )
        except HotStateUnavailable as exc:
            _log.warning("model cache update failed (answer not cached): %s", exc)

    async def aclear(self, **kwargs: Any) -> None:
        await self.store.clear()

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        raise NotImplementedError("keel's model cache is async: use alookup")

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        raise NotImplementedError("keel's model cache is async: use aupdate")

    def clear(self, **kwargs: Any) -> None:
        raise NotImplementedError("keel's model cache is async: use aclear")
