"""Hot state in Redis, shared by every process: breakers and moving windows as atomic Lua scripts.

Each check is one round trip: one EVALSHA (redis-py loads a script once and reloads it on NOSCRIPT).
A tool call's whole check (its breaker and all its rate windows) is one `ADMIT` script. Moving
windows are sorted sets of hit times, trimmed to the window on each check: the same exact moving
window as the `limits` library's, which the embedded profile uses in memory.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from limits import RateLimitItem
from redis.exceptions import RedisError

from keel.hotstate.known import KnownBreakers
from keel.hotstate.lua import ACQUIRE, ADMIT, RECORD, STATE
from keel.hotstate.types import (
    Admission,
    BreakerConfig,
    BreakerDecision,
    BreakerState,
    HotStateUnavailable,
    RateDecision,
    RateHit,
)

__all__ = ["RedisAdmission", "RedisBreakers", "RedisRateWindows", "redis_client"]

_TIMEOUT_S = 2.0


def redis_client(url: str) -> aioredis.Redis:
    """A redis.asyncio client with short timeouts (a guard must not hang on a dead server)."""
    return aioredis.Redis.from_url(
        url, socket_timeout=_TIMEOUT_S, socket_connect_timeout=_TIMEOUT_S, decode_responses=True
    )


def _where(url: str) -> str:
    return "Redis at " + url.split("@")[-1].split("://")[-1]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class _Scripts:
    """Runs this module's scripts on one client, counting round trips; Redis errors fail closed."""

    def __init__(self, client: aioredis.Redis, url: str) -> None:
        self.client = client
        self._where = _where(url)
        self._scripts = {s: client.register_script(s) for s in (ACQUIRE, ADMIT, RECORD, STATE)}
        self.round_trips = 0

    async def run(self, script: str, keys: list[str], args: list[Any]) -> Any:
        self.round_trips += 1
        try:
            return await self._scripts[script](keys=keys, args=args)
        except (RedisError, OSError) as exc:
            raise HotStateUnavailable(f"{self._where} is unavailable: {exc}") from exc


def _breaker_decision(reply: list[Any]) -> BreakerDecision:
    allowed, state, probe, wait_ms, failures = reply[:5]
    return BreakerDecision(
        allowed=bool(int(allowed)),
        state=_text(state),  # type: ignore[arg-type]
        probe=bool(int(probe)),
        retry_after_s=int(wait_ms) / 1000,
        failures=int(failures),
    )


class _OnScripts:
    """A store whose every operation is one script call: its client and its round-trip count."""

    _scripts: _Scripts

    @property
    def client(self) -> aioredis.Redis:
        return self._scripts.client

    @property
    def round_trips(self) -> int:
        return self._scripts.round_trips


class RedisBreakers(_OnScripts):
    """Circuit breakers shared across processes; state in one hash per name.

    Every state an acquire, record or read returns is remembered in `known` (keel/hotstate/known.py),
    for the guard edge's `seen`; a Redis error forgets it all.
    """

    def __init__(self, client: aioredis.Redis, url: str, *, prefix: str = "keel:") -> None:
        self._scripts = _Scripts(client, url)
        self.url, self.prefix = url, prefix
        self._prefix = prefix + "breaker:"
        self.known = KnownBreakers()

    def seen(self, name: str) -> BreakerState | None:
        return self.known.get(name)

    async def _run(self, name: str, script: str, args: list[Any]) -> Any:
        try:
            return await self._scripts.run(script, [self._prefix + name], args)
        except HotStateUnavailable:
            self.known.clear()
            raise

    async def acquire(self, name: str, config: BreakerConfig) -> BreakerDecision:
        decision = _breaker_decision(await self._run(name, ACQUIRE, [int(config.recovery_s * 1000)]))
        self.known.put(name, decision.state)
        return decision

    async def record(self, name: str, config: BreakerConfig, *, ok: bool, probe: bool) -> BreakerState:
        ttl_ms = int(max(config.recovery_s * 20, 600) * 1000)
        args = [int(ok), int(probe), config.failure_threshold, ttl_ms]
        state: BreakerState = _text(await self._run(name, RECORD, args))  # type: ignore[assignment]
        self.known.put(name, state)
        return state

    async def state(self, name: str, config: BreakerConfig) -> BreakerState:
        state: BreakerState = _text(await self._run(name, STATE, [int(config.recovery_s * 1000)]))  # type: ignore[assignment]
        self.known.put(name, state)
        return state


class RedisAdmission(_OnScripts):
    """A tool call's breaker and rate windows checked and counted in one script (one round trip)."""

    def __init__(self, client: aioredis.Redis, url: str, *, prefix: str = "keel:") -> None:
        self._scripts = _Scripts(client, url)
        self._breakers, self._rates = prefix + "breaker:", prefix + "rate:"

    async def admit(
        self, breaker: str | None, config: BreakerConfig | None, hits: Sequence[RateHit]
    ) -> Admission:
        """Admit one call (`breaker` None: rate windows only)."""
        keys = [self._breakers + breaker] if breaker is not None else []
        keys += [self._rates + hit.item.key_for(*hit.key) for hit in hits]
        recovery_ms = int(config.recovery_s * 1000) if config is not None else 0
        args: list[Any] = [recovery_ms, int(breaker is not None), uuid.uuid4().hex]
        for hit in hits:
            args += [hit.item.amount, int(hit.item.get_expiry() * 1000)]
        reply = await self._scripts.run(ADMIT, keys, args)
        refused_by, wait_ms = int(reply[5]), int(reply[6])
        return Admission(
            breaker=_breaker_decision(reply),
            limited_by=hits[refused_by - 1].scope if refused_by else None,
            retry_after_s=wait_ms / 1000,
        )


class RedisRateWindows:
    """Moving windows in Redis (the `ADMIT` script without a breaker)."""

    def __init__(self, url: str, *, prefix: str = "keel:") -> None:
        self._admission = RedisAdmission(redis_client(url), url, prefix=prefix)

    @property
    def round_trips(self) -> int:
        return self._admission.round_trips

    async def hit(self, item: RateLimitItem, *key: str) -> RateDecision:
        got = await self._admission.admit(None, None, [RateHit(scope="window", item=item, key=key)])
        return RateDecision(allowed=got.allowed, retry_after_s=got.retry_after_s)

    async def aclose(self) -> None:
        await self._admission.client.aclose()
