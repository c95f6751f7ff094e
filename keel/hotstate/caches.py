"""The caches of one process, built from the settings: the store of the profile and the two caches on it.

Off unless configured: `cache_model_ttl_s` / `cache_tool_ttl_s` (keel.yaml `cache:`) at 0 leave that cache
None, and the model call and the tool run exactly as without caching.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from keel.hotstate.cache_store import CacheStore, MemoryCacheStore
from keel.hotstate.model_cache import ModelResponseCache
from keel.hotstate.tool_cache import ToolResultCache
from keel.settings import Settings

__all__ = ["Caches", "cache_store"]


async def _nothing() -> None:
    return None


def cache_store(settings: Settings) -> tuple[CacheStore, Callable[[], Awaitable[None]]]:
    """The profile's store (Redis under `<redis_prefix>cache:`, or in-process) and a function closing it."""
    if settings.profile == "postgres":
        from keel.hotstate.redis import redis_client  # redis: postgres only
        from keel.hotstate.redis_cache import RedisCacheStore

        client = redis_client(settings.redis_url)
        return RedisCacheStore(client, prefix=settings.redis_prefix), client.aclose
    return MemoryCacheStore(max_entries=settings.cache_max_entries), _nothing


@dataclass(frozen=True, slots=True, kw_only=True)
class Caches:
    """The model-response cache and the tool result cache (None: that cache is off)."""

    model: ModelResponseCache | None = None
    tools: ToolResultCache | None = None
    close: Callable[[], Awaitable[None]] = _nothing

    @classmethod
    def from_settings(cls, settings: Settings) -> Caches:
        """The caches the settings turn on, over one shared store; no I/O happens here."""
        if not (settings.cache_model_ttl_s or settings.cache_tool_ttl_s):
            return cls()
        store, close = cache_store(settings)
        model_ttl, tool_ttl = settings.cache_model_ttl_s, settings.cache_tool_ttl_s
        return cls(
            model=ModelResponseCache(store, ttl_s=model_ttl) if model_ttl else None,
            tools=ToolResultCache(store, ttl_s=tool_ttl) if tool_ttl else None,
            close=close,
        )
