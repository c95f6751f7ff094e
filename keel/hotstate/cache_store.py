"""Where cached model answers and tool results live: a key-value store with a time to live per entry.

`CacheStore` is the contract; `MemoryCacheStore` is the embedded profile's (one process, bounded, oldest
dropped first); `keel.hotstate.redis_cache.RedisCacheStore` the postgres profile's, shared by every replica.
Values are strings (JSON made by the caches); keys are made by the caches and never hold raw user data.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["CacheStore", "MemoryCacheStore"]


class CacheStore(Protocol):
    """A string store with per-entry expiry. A store that cannot be reached raises HotStateUnavailable."""

    shared: bool
    """True when every process of the deployment sees the same entries (Redis); False: this process only."""

    async def get(self, key: str) -> str | None:
        """The value under `key`, or None when absent or expired."""
        ...

    async def set(self, key: str, value: str, ttl_s: float) -> None:
        """Store `value` under `key` for `ttl_s` seconds."""
        ...

    async def count(self) -> int:
        """Live entries of this deployment's cache."""
        ...

    async def clear(self) -> int:
        """Remove this deployment's entries (and nothing else); how many were removed."""
        ...


class MemoryCacheStore:
    """The in-process store: a dict in insertion order with an expiry per entry, at most `max_entries`."""

    shared = False

    def __init__(self, *, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self._clock = clock
        self._items: dict[str, tuple[float, str]] = {}

    async def get(self, key: str) -> str | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[0] <= self._clock():
            del self._items[key]
            return None
        return item[1]

    async def set(self, key: str, value: str, ttl_s: float) -> None:
        self._items.pop(key, None)  # re-inserted last: the newest
        while len(self._items) >= self.max_entries:
            del self._items[next(iter(self._items))]
        self._items[key] = (self._clock() + ttl_s, value)

    async def count(self) -> int:
        now = self._clock()
        for key in [k for k, (expires, _) in self._items.items() if expires <= now]:
            del self._items[key]
        return len(self._items)

    async def clear(self) -> int:
        removed = len(self._items)
        self._items.clear()
        return removed
