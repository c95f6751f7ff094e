"""The cache store in Redis (postgres profile): plain string keys under `<redis_prefix>cache:` with PX expiry.

`count` and `clear` walk only this deployment's keys (SCAN MATCH on the escaped prefix, then UNLINK): other
Redis data, another deployment's cache included, is never touched.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from keel.hotstate.types import HotStateUnavailable

__all__ = ["RedisCacheStore", "CACHE_NAMESPACE"]

CACHE_NAMESPACE = "cache:"
"""Appended to the deployment's `redis_prefix`: the cache's keys are `<redis_prefix>cache:<key>`."""

_BATCH = 500


def _glob_escape(text: str) -> str:
    """`text` literal in a Redis MATCH pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisCacheStore:
    """Cache entries in Redis, shared by every process of the deployment."""

    shared = True

    def __init__(self, client: aioredis.Redis, *, prefix: str) -> None:
        self.client = client
        self.prefix = prefix + CACHE_NAMESPACE

    async def get(self, key: str) -> str | None:
        try:
            value = await self.client.get(self.prefix + key)
        except (RedisError, OSError) as exc:
            raise HotStateUnavailable(f"the cache in Redis is unavailable: {exc}") from exc
        return value.decode() if isinstance(value, bytes) else value

    async def set(self, key: str, value: str, ttl_s: float) -> None:
        try:
            await self.client.set(self.prefix + key, value, px=max(1, int(ttl_s * 1000)))
        except (RedisError, OSError) as exc:
            raise HotStateUnavailable(f"the cache in Redis is unavailable: {exc}") from exc

    async def _keys(self) -> list[str]:
        match = _glob_escape(self.prefix) + "*"
        try:
            return [k async for k in self.client.scan_iter(match=match, count=_BATCH)]
        except (RedisError, OSError) as exc:
            raise HotStateUnavailable(f"the cache in Redis is unavailable: {exc}") from exc

    async def count(self) -> int:
        return len(await self._keys())

    async def clear(self) -> int:
        keys = await self._keys()
        removed = 0
        try:
            for start in range(0, len(keys), _BATCH):
                removed += int(await self.client.unlink(*keys[start : start + _BATCH]))
        except (RedisError, OSError) as exc:
            raise HotStateUnavailable(f"the cache in Redis is unavailable: {exc}") from exc
        return removed
