"""In-process hot state for the embedded profile: breakers in a dict, rate windows in `limits` memory."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from limits import RateLimitItem
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from keel.hotstate.types import BreakerConfig, BreakerDecision, BreakerState, RateDecision

__all__ = ["MemoryBreakers", "MemoryRateWindows"]


class MemoryRateWindows:
    """Moving windows kept in this process (the `limits` library's memory storage)."""

    def __init__(self) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self.round_trips = 0

    async def hit(self, item: RateLimitItem, *key: str) -> RateDecision:
        if await self._limiter.hit(item, *key):
            return RateDecision(allowed=True)
        stats = await self._limiter.get_window_stats(item, *key)
        return RateDecision(allowed=False, retry_after_s=max(stats.reset_time - time.time(), 0.0))


@dataclass(slots=True)
class _Breaker:
    state: BreakerState = "closed"
    failures: int = 0
    opened_at: float = 0.0
    probe_until: float = 0.0


class MemoryBreakers:
    """Circuit breakers kept in this process; same state machine as the Redis scripts."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._breakers: dict[str, _Breaker] = {}
        self._lock = asyncio.Lock()
        self.round_trips = 0

    async def acquire(self, name: str, config: BreakerConfig) -> BreakerDecision:
        async with self._lock:
            b = self._breakers.setdefault(name, _Breaker())
            now = self._clock()
            if b.state == "closed":
                return BreakerDecision(allowed=True, state="closed", failures=b.failures)
            if b.state == "open" and now < b.opened_at + config.recovery_s:
                wait = b.opened_at + config.recovery_s - now
                return BreakerDecision(allowed=False, state="open", retry_after_s=wait, failures=b.failures)
            if b.state == "half_open" and now < b.probe_until:
                wait = b.probe_until - now
                return BreakerDecision(
                    allowed=False, state="half_open", retry_after_s=wait, failures=b.failures
                )
            b.state, b.probe_until = "half_open", now + config.recovery_s
            return BreakerDecision(allowed=True, state="half_open", probe=True, failures=b.failures)

    async def record(self, name: str, config: BreakerConfig, *, ok: bool, probe: bool) -> BreakerState:
        async with self._lock:
            b = self._breakers.setdefault(name, _Breaker())
            now = self._clock()
            if probe:
                if b.state == "half_open":
                    if ok:
                        b.state, b.failures = "closed", 0
                    else:
                        b.state, b.opened_at = "open", now
                return b.state
            if b.state != "closed":
                return b.state
            if ok:
                b.failures = 0
                return b.state
            b.failures += 1
            if b.failures >= config.failure_threshold:
                b.state, b.opened_at = "open", now
            return b.state

    async def state(self, name: str, config: BreakerConfig) -> BreakerState:
        b = self._breakers.get(name)
        if b is None:
            return "closed"
        if b.state == "open" and self._clock() >= b.opened_at + config.recovery_s:
            return "half_open"
        return b.state
