"""The one-round-trip tool-call check for a pair of stores: Redis' `ADMIT` script, or in process."""

from __future__ import annotations

from keel.hotstate.memory import MemoryAdmission, MemoryBreakers, MemoryRateWindows
from keel.hotstate.types import BreakerStore, RateWindows, ToolAdmission

__all__ = ["admission_for", "UnsupportedStores"]


class UnsupportedStores(TypeError):
    """Breakers and rate windows that cannot be checked together atomically."""


def admission_for(breakers: BreakerStore, rates: RateWindows) -> ToolAdmission:
    """The admission check over the stores a profile built (Redis: on the breakers' connection)."""
    if isinstance(breakers, MemoryBreakers) and isinstance(rates, MemoryRateWindows):
        return MemoryAdmission(breakers, rates)
    from keel.hotstate.redis import RedisAdmission, RedisBreakers  # here: the embedded profile needs no redis

    if isinstance(breakers, RedisBreakers):
        return RedisAdmission(breakers.client, breakers.url, prefix=breakers.prefix)
    raise UnsupportedStores(
        f"cannot check {type(breakers).__name__} and {type(rates).__name__} in one step; "
        "use the in-process pair or the Redis pair"
    )
