"""What this process last saw of each circuit breaker: the guard edge's breaker check without a read.

Why: the guard edge before every model call read the model's breaker in Redis (one round trip) only to
learn what the breaker's acquire a moment later finds out anyway. Every acquire, record and read returns
the breaker's state, so the Redis store remembers it here, with when it saw it, and the edge trusts a
recent "closed". It is a hint, never the authority: the acquire is still the atomic check that refuses
a call while the breaker is open, whichever replica opened it (a pass on a stale "closed" meets that
refusal), and anything but a recent "closed" is read again. A store error forgets everything, so the
edge reads (and fails closed) while the store is down. Bounded: the least recently seen names go first.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from keel.hotstate.types import BreakerState

__all__ = ["KnownBreakers"]

FRESH_S = 5.0
"""How long a state seen by this process is trusted by the guard edge."""


class KnownBreakers:
    """The last state seen per breaker name, trusted for `fresh_s` seconds (at most `size` names)."""

    def __init__(
        self, fresh_s: float = FRESH_S, size: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._fresh_s, self._size, self._clock = fresh_s, size, clock
        self._seen: OrderedDict[str, tuple[float, BreakerState]] = OrderedDict()

    def get(self, name: str) -> BreakerState | None:
        """The state of `name` seen less than `fresh_s` ago, or None (never seen, or too long ago)."""
        item = self._seen.get(name)
        if item is None or self._clock() - item[0] > self._fresh_s:
            return None
        return item[1]

    def put(self, name: str, state: BreakerState) -> None:
        self._seen[name] = (self._clock(), state)
        self._seen.move_to_end(name)
        while len(self._seen) > self._size:
            self._seen.popitem(last=False)

    def clear(self) -> None:
        """Forget every breaker (the store failed: the next check must read it)."""
        self._seen.clear()
