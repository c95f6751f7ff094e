"""Hot state: rate-limit windows and circuit breakers, in-process (embedded) or in Redis (postgres)."""

from keel.hotstate.memory import MemoryBreakers, MemoryRateWindows
from keel.hotstate.policy import LimitsPolicy, LimitsPolicyError
from keel.hotstate.redis import RedisBreakers, RedisRateWindows, redis_client
from keel.hotstate.types import (
    BreakerConfig,
    BreakerDecision,
    BreakerState,
    BreakerStore,
    HotStateUnavailable,
    RateDecision,
    RateWindows,
)

__all__ = [
    "BreakerConfig",
    "BreakerDecision",
    "BreakerState",
    "BreakerStore",
    "HotStateUnavailable",
    "LimitsPolicy",
    "LimitsPolicyError",
    "MemoryBreakers",
    "MemoryRateWindows",
    "RateDecision",
    "RateWindows",
    "RedisBreakers",
    "RedisRateWindows",
    "redis_client",
]
