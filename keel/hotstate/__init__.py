"""Hot state: rate-limit windows and circuit breakers, in-process (embedded) or in Redis (postgres).

The Redis stores load on first use (PEP 562): the redis client costs the embedded profile, which never
uses it, a sixth of a second at start.
"""

from typing import TYPE_CHECKING, Any

from keel.hotstate.admission import UnsupportedStores, admission_for
from keel.hotstate.memory import MemoryAdmission, MemoryBreakers, MemoryRateWindows
from keel.hotstate.policy import LimitsPolicy, LimitsPolicyError
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

if TYPE_CHECKING:
    from keel.hotstate.redis import RedisAdmission, RedisBreakers, RedisRateWindows, redis_client

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

_REDIS = frozenset({"RedisAdmission", "RedisBreakers", "RedisRateWindows", "redis_client"})


def __getattr__(name: str) -> Any:
    if name in _REDIS:
        from keel.hotstate import redis

        return getattr(redis, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
