"""Hot state in Redis, shared by every process: breakers as atomic Lua scripts, rate windows via `limits`.

Each check is one round trip: a breaker decision is one EVALSHA, a rate-limit hit is one EVALSHA of
`limits`' moving-window script (a refused hit costs a second read for the retry time). Breakers use
Redis' own clock (`TIME`), so replicas with skewed clocks agree on when a breaker may probe.
"""

from __future__ import annotations

import time
from typing import Any

import redis.asyncio as aioredis
from limits import RateLimitItem
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.exceptions import RedisError

from keel.hotstate.types import (
    BreakerConfig,
    BreakerDecision,
    BreakerState,
    HotStateUnavailable,
    RateDecision,
)

__all__ = ["RedisBreakers", "RedisRateWindows", "redis_client"]

_TIMEOUT_S = 2.0

_NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "

_ACQUIRE = (
    _NOW
    + """
local h = redis.call('HMGET', KEYS[1], 'state', 'failures', 'opened_at', 'probe_until')
local state = h[1] or 'closed'
local failures = tonumber(h[2] or '0')
local recovery = tonumber(ARGV[1])
if state == 'closed' then return {1, 'closed', 0, 0, failures} end
if state == 'open' then
  local ready = tonumber(h[3]) + recovery
  if now < ready then return {0, 'open', 0, ready - now, failures} end
else
  local lease = tonumber(h[4] or '0')
  if now < lease then return {0, 'half_open', 0, lease - now, failures} end
end
redis.call('HSET', KEYS[1], 'state', 'half_open', 'probe_until', now + recovery)
return {1, 'half_open', 1, 0, failures}
"""
)

_RECORD = (
    _NOW
    + """
local h = redis.call('HMGET', KEYS[1], 'state', 'failures')
local state = h[1] or 'closed'
local failures = tonumber(h[2] or '0')
local ok, probe = ARGV[1] == '1', ARGV[2] == '1'
if probe then
  if state ~= 'half_open' then return state end
  if ok then redis.call('DEL', KEYS[1]) return 'closed' end
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', now)
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return 'open'
end
if state ~= 'closed' then return state end
if ok then
  if failures > 0 then redis.call('DEL', KEYS[1]) end
  return 'closed'
end
failures = failures + 1
if failures >= tonumber(ARGV[3]) then
  state = 'open'
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', now, 'failures', failures)
else
  redis.call('HSET', KEYS[1], 'failures', failures)
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return state
"""
)

_STATE = (
    _NOW
    + """
local h = redis.call('HMGET', KEYS[1], 'state', 'opened_at')
local state = h[1] or 'closed'
if state == 'open' and now >= tonumber(h[2]) + tonumber(ARGV[1]) then return 'half_open' end
return state
"""
)


def redis_client(url: str) -> aioredis.Redis:
    """A redis.asyncio client with short timeouts (a guard must not hang on a dead server)."""
    return aioredis.Redis.from_url(
        url, socket_timeout=_TIMEOUT_S, socket_connect_timeout=_TIMEOUT_S, decode_responses=True
    )


def _where(url: str) -> str:
    return "Redis at " + url.split("@")[-1].split("://")[-1]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisBreakers:
    """Circuit breakers shared across processes; state in one hash per name."""

    def __init__(self, client: aioredis.Redis, url: str, *, prefix: str = "keel:") -> None:
        self._client = client
        self._where = _where(url)
        self._prefix = prefix + "breaker:"
        self._acquire = client.register_script(_ACQUIRE)
        self._record = client.register_script(_RECORD)
        self._state = client.register_script(_STATE)
        self.round_trips = 0

    async def _run(self, script: Any, name: str, *args: Any) -> Any:
        self.round_trips += 1
        try:
            return await script(keys=[self._prefix + name], args=list(args))
        except (RedisError, OSError) as exc:
            raise HotStateUnavailable(f"{self._where} is unavailable: {exc}") from exc

    async def acquire(self, name: str, config: BreakerConfig) -> BreakerDecision:
        allowed, state, probe, wait_ms, failures = await self._run(
            self._acquire, name, int(config.recovery_s * 1000)
        )
        return BreakerDecision(
            allowed=bool(allowed),
            state=_text(state),  # type: ignore[arg-type]
            probe=bool(probe),
            retry_after_s=int(wait_ms) / 1000,
            failures=int(failures),
        )

    async def record(self, name: str, config: BreakerConfig, *, ok: bool, probe: bool) -> BreakerState:
        ttl_ms = int(max(config.recovery_s * 20, 600) * 1000)
        state = await self._run(self._record, name, int(ok), int(probe), config.failure_threshold, ttl_ms)
        return _text(state)  # type: ignore[return-value]

    async def state(self, name: str, config: BreakerConfig) -> BreakerState:
        return _text(await self._run(self._state, name, int(config.recovery_s * 1000)))  # type: ignore[return-value]


class RedisRateWindows:
    """Moving windows in Redis through the `limits` library (its redis-py implementation)."""

    def __init__(self, url: str, *, prefix: str = "keel:") -> None:
        storage = RedisStorage(
            "async+" + url if not url.startswith("async+") else url,
            implementation="redispy",
            key_prefix=prefix + "rate",
            wrap_exceptions=True,
            socket_timeout=_TIMEOUT_S,
            socket_connect_timeout=_TIMEOUT_S,
        )
        self._limiter = MovingWindowRateLimiter(storage)
        self._where = _where(url)
        self.round_trips = 0

    async def hit(self, item: RateLimitItem, *key: str) -> RateDecision:
        try:
            self.round_trips += 1
            if await self._limiter.hit(item, *key):
                return RateDecision(allowed=True)
            self.round_trips += 1
            stats = await self._limiter.get_window_stats(item, *key)
        except (StorageError, RedisError, OSError) as exc:
            raise HotStateUnavailable(f"{self._where} is unavailable: {exc}") from exc
        return RateDecision(allowed=False, retry_after_s=max(stats.reset_time - time.time(), 0.0))
