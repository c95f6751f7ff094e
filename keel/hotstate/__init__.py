"""Hot state: rate-limit windows and circuit breakers, in-process (embedded) or in Redis (postgres)."""

from keel.hotstate.admission import UnsupportedStores, admission_for
from keel.hotstate.memory import MemoryAdmission, MemoryBreakers, MemoryRateWindows
from keel.hotstate.policy import LimitsPolicy, LimitsPolicyError
from keel.hotstate.redis import RedisAdmission, RedisBreakers, RedisRateWindows, redis_client
from keel.hotstate.types import (
    Admission,
    BreakerConfig,
    BreakerDecision,
    BreakerState,
    BreakerStore,
    HotStateUnavailable,
    RateDecision,
    RateHit,
    RateWindows,
    ToolAdmission,
)

__all__ = [
    "Admission",
    "BreakerConfig",
    "BreakerDecision",
    "BreakerState",
    "BreakerStore",
    "HotStateUnavailable",
    "LimitsPolicy",
    "LimitsPolicyError",
    "MemoryAdmission",
    "MemoryBreakers",
    "MemoryRateWindows",
    "RateDecision",
    "RateHit",
    "RateWindows",
    "RedisAdmission",
    "RedisBreakers",
    "RedisRateWindows",
    "ToolAdmission",
    "UnsupportedStores",
    "admission_for",
    "redis_client",
]
