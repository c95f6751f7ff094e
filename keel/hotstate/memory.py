"""In-process hot state for the embedded profile: breakers in a dict, rate windows in `limits` memory."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from limits import RateLimitItem
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from keel.hotstate.types import (
    Admission,
    BreakerConfig,
    BreakerDecision,
    BreakerState,
    RateDecision,
    RateHit,
)

__all__ = ["MemoryAdmission", "MemoryBreakers", "MemoryRateWindows"]


class MemoryRateWindows:
    """Moving windows kept in this process (the `limits` library's memory storage)."""

    def __init__(self) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self.round_trips = 0

    async def hit(self, item: RateLimitItem, *key: str) -> RateDecision:
        if await self._limiter.hit(item, *key):
            return RateDecision(allowed=True)
        return RateDecision(allowed=False, retry_after_s=await self.wait(item, *key))

    async def has_room(self, item: RateLimitItem, *key: str) -> bool:
        return await self._limiter.test(item, *key)

    async def wait(self, item: RateLimitItem, *key: str) -> float:
        """Seconds until the window under `key` has room."""
        stats = await self._limiter.get_window_stats(item, *key)
        return max(stats.reset_time - time.time(), 0.0)


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
        self.lock = asyncio.Lock()
        self.round_trips = 0

    def decide(self, name: str, config: BreakerConfig) -> BreakerDecision:
        """The decision `acquire` would make, without taking the probe (hold `lock` around both)."""
        b = self._breakers.setdefault(name, _Breaker())
        now = self._clock()
        if b.state == "closed":
            return BreakerDecision(allowed=True, state="closed", failures=b.failures)
        if b.state == "open" and now < b.opened_at + config.recovery_s:
            wait = b.opened_at + config.recovery_s - now
            return BreakerDecision(allowed=False, state="open", retry_after_s=wait, failures=b.failures)
        if b.state == "half_open" and now < b.probe_until:
            wait = b.probe_until - now
            return BreakerDecision(allowed=False, state="half_open", retry_after_s=wait, failures=b.failures)
        return BreakerDecision(allowed=True, state="half_open", probe=True, failures=b.failures)

    def take_probe(self, name: str, config: BreakerConfig) -> None:
        """Lease the half-open probe to the caller `decide` chose (hold `lock`)."""
        b = self._breakers[name]
        b.state, b.probe_until = "half_open", self._clock() + config.recovery_s

    async def acquire(self, name: str, config: BreakerConfig) -> BreakerDecision:
        async with self.lock:
            decision = self.decide(name, config)
            if decision.probe:
                self.take_probe(name, config)
            return decision

    async def record(self, name: str, config: BreakerConfig, *, ok: bool, probe: bool) -> BreakerState:
        async with self.lock:
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

    def seen(self, name: str) -> BreakerState | None:
        """None: reading this process's own breakers costs no round trip, so nothing is remembered."""
        return None

    async def state(self, name: str, config: BreakerConfig) -> BreakerState:
        b = self._breakers.get(name)
        if b is None:
            return "closed"
        if b.state == "open" and self._clock() >= b.opened_at + config.recovery_s:
            return "half_open"
        return b.state


class MemoryAdmission:
    """A tool call's breaker and rate windows checked and counted together, under the breakers' lock."""

    def __init__(self, breakers: MemoryBreakers, rates: MemoryRateWindows) -> None:
        self._breakers, self._rates = breakers, rates
        self.round_trips = 0

    async def admit(
        self, breaker: str | None, config: BreakerConfig | None, hits: Sequence[RateHit]
    ) -> Admission:
        async with self._breakers.lock:
            decision = BreakerDecision(allowed=True, state="closed")
            if breaker is not None and config is not None:
                decision = self._breakers.decide(breaker, config)
                if not decision.allowed:
                    return Admission(breaker=decision)
            refused = [
                (await self._rates.wait(h.item, *h.key), h.scope)
                for h in hits
                if not await self._rates.has_room(h.item, *h.key)
            ]
            if refused:
                wait, scope = max(refused, key=lambda r: r[0])
                return Admission(breaker=replace(decision, probe=False), limited_by=scope, retry_after_s=wait)
            for h in hits:
                await self._rates.hit(h.item, *h.key)
            if decision.probe and breaker is not None and config is not None:
                self._breakers.take_probe(breaker, config)
            return Admission(breaker=decision)
