"""Working memory: the recent context of a thread, a cache over the checkpoint.

What it holds is a `ThreadDigest`: one short line per message of the thread, built from the checkpointed
messages. The context fitter (memory/context.py) uses it only when a call's messages overflow the budget.
Redis (postgres profile, TTL refreshed on every read and write) or process memory (embedded).
Losing it loses nothing: a miss, an expired key or Redis being down means "rebuild from the messages".
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["ThreadDigest", "WorkingMemory", "InProcessWorkingMemory", "RedisWorkingMemory"]

log = logging.getLogger(__name__)
MAX_LINES = 400


@dataclass(frozen=True, slots=True, kw_only=True)
class ThreadDigest:
    """One line per message of `messages[start:covered]`; `last_id` is the id of message `covered - 1`."""

    covered: int
    start: int
    last_id: str
    lines: tuple[str, ...]

    def to_json(self) -> str:
        return json.dumps(
            {"covered": self.covered, "start": self.start, "last_id": self.last_id, "lines": list(self.lines)}
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> ThreadDigest | None:
        try:
            data = json.loads(raw)
            return cls(
                covered=int(data["covered"]),
                start=int(data["start"]),
                last_id=str(data["last_id"]),
                lines=tuple(str(x) for x in data["lines"]),
            )
        except (ValueError, KeyError, TypeError):
            return None  # a corrupt entry is a miss


@runtime_checkable
class WorkingMemory(Protocol):
    """Thread id → digest, with a time to live refreshed on use. Never raises for a store outage."""

    ttl_s: float

    async def get(self, thread_id: str) -> ThreadDigest | None: ...

    async def put(self, thread_id: str, digest: ThreadDigest) -> bool: ...

    async def drop(self, thread_id: str) -> None: ...

    async def aclose(self) -> None: ...


class InProcessWorkingMemory:
    """The embedded profile's working memory: a bounded dict with expiry."""

    def __init__(self, ttl_s: float = 3600.0, max_threads: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self._max = max_threads
        self._items: OrderedDict[str, tuple[float, ThreadDigest]] = OrderedDict()

    async def get(self, thread_id: str) -> ThreadDigest | None:
        item = self._items.get(thread_id)
        if item is None or item[0] < time.monotonic():
            self._items.pop(thread_id, None)
            return None
        self._items[thread_id] = (time.monotonic() + self.ttl_s, item[1])
        self._items.move_to_end(thread_id)
        return item[1]

    async def put(self, thread_id: str, digest: ThreadDigest) -> bool:
        self._items[thread_id] = (time.monotonic() + self.ttl_s, digest)
        self._items.move_to_end(thread_id)
        while len(self._items) > self._max:
            self._items.popitem(last=False)
        return True

    async def drop(self, thread_id: str) -> None:
        self._items.pop(thread_id, None)

    async def aclose(self) -> None:
        self._items.clear()


class RedisWorkingMemory:
    """Working memory in Redis: one key per thread, `GETEX … EX ttl` refreshes the TTL on read."""

    def __init__(
        self, url: str, *, ttl_s: float = 3600.0, prefix: str = "keel:wm:", timeout_s: float = 0.5
    ) -> None:
        import redis.asyncio as aioredis

        self.ttl_s = ttl_s
        self.prefix = prefix
        self._redis = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry_on_timeout=False
        )
        self.last_error: str | None = None
        """The last Redis error seen (for health); None after a successful call."""

    def _key(self, thread_id: str) -> str:
        return f"{self.prefix}{thread_id}"

    def _failed(self, what: str, exc: Exception) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
        log.warning("working memory %s failed (cache only, rebuilt from the checkpoint): %s", what, exc)

    async def get(self, thread_id: str) -> ThreadDigest | None:
        try:
            raw = await self._redis.getex(self._key(thread_id), ex=max(1, int(self.ttl_s)))
        except Exception as exc:  # noqa: BLE001 - a cache outage is a miss
            self._failed("read", exc)
            return None
        self.last_error = None
        return None if raw is None else ThreadDigest.from_json(raw)

    async def put(self, thread_id: str, digest: ThreadDigest) -> bool:
        try:
            await self._redis.set(self._key(thread_id), digest.to_json(), ex=max(1, int(self.ttl_s)))
        except Exception as exc:  # noqa: BLE001 - a cache outage loses nothing
            self._failed("write", exc)
            return False
        self.last_error = None
        return True

    async def drop(self, thread_id: str) -> None:
        try:
            await self._redis.delete(self._key(thread_id))
        except Exception as exc:  # noqa: BLE001
            self._failed("drop", exc)

    async def ttl(self, thread_id: str) -> int:
        """Seconds left on a thread's key (-2: no key), for operators and tests."""
        return int(await self._redis.ttl(self._key(thread_id)))

    async def aclose(self) -> None:
        await self._redis.aclose()
