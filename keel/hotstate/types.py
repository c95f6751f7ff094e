"""Hot state contracts: rate-limit windows and circuit breakers, in-process or shared through Redis."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from limits import RateLimitItem

__all__ = [
    "Admission",
    "BreakerConfig",
    "BreakerDecision",
    "BreakerState",
    "BreakerStore",
    "HotStateUnavailable",
    "RateDecision",
    "RateHit",
    "RateWindows",
    "ToolAdmission",
]

BreakerState = Literal["closed", "open", "half_open"]


class HotStateUnavailable(RuntimeError):
    """The hot-state store (Redis) cannot be reached: guards fail closed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerConfig:
    """When a breaker opens and how long it stays open before one probe may go through."""

    failure_threshold: int
    recovery_s: float

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.recovery_s <= 0:
            raise ValueError("breaker failure_threshold must be >= 1 and recovery_s > 0")


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerDecision:
    """Whether one call may go through its breaker now."""

    allowed: bool
    state: BreakerState
    probe: bool = False
    """True when this call is the single half-open probe: its outcome closes or re-opens the breaker."""
    retry_after_s: float = 0.0
    """For a refused call: seconds until the breaker lets a probe through."""
    failures: int = 0
    """Consecutive failures counted so far (a success with zero failures needs no write)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RateDecision:
    """The outcome of one rate-limit check."""

    allowed: bool
    retry_after_s: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RateHit:
    """One moving window a call must fit in: `item` (e.g. 10/minute) counted under `key`."""

    scope: str
    """What the window limits (e.g. "per_tool", "per_user"), named back when it refuses."""
    item: RateLimitItem
    key: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Admission:
    """The outcome of one admission check: a breaker decision and every rate window, taken together."""

    breaker: BreakerDecision
    limited_by: str | None = None
    """The scope of the window that refused the call (the one with the longest wait), or None."""
    retry_after_s: float = 0.0
    """For a call refused by a window: seconds until every refusing window has room."""

    @property
    def allowed(self) -> bool:
        return self.breaker.allowed and self.limited_by is None


class RateWindows(Protocol):
    """Moving-window rate limits; one check counts one hit when it is allowed."""

    round_trips: int
    """Store round trips made so far (for the benchmark)."""

    async def hit(self, item: RateLimitItem, *key: str) -> RateDecision:
        """Count one call under `key` if the window has room; otherwise say when it will."""
        ...


class BreakerStore(Protocol):
    """Circuit-breaker state per name (a model or a tool): closed, open, half-open with one probe."""

    round_trips: int

    async def acquire(self, name: str, config: BreakerConfig) -> BreakerDecision:
        """May a call to `name` go through now? In half-open, exactly one caller gets the probe."""
        ...

    async def record(self, name: str, config: BreakerConfig, *, ok: bool, probe: bool) -> BreakerState:
        """Report a call's outcome; returns the breaker's state after it."""
        ...

    async def state(self, name: str, config: BreakerConfig) -> BreakerState:
        """The breaker's state, read only (open past its recovery time reads as half_open)."""
        ...

    def seen(self, name: str) -> BreakerState | None:
        """The state this process saw `name` in a moment ago (its last acquire, record or read), or None:
        a hint that spares the guard edge a read, never the authority (`acquire` is)."""
        ...


class ToolAdmission(Protocol):
    """A breaker acquire and all of a call's rate-window hits as one atomic check (one store round trip).

    A hit is counted in every window, and a half-open probe taken, only when the breaker and every
    window allow the call; a refused call changes nothing.
    """

    round_trips: int

    async def admit(
        self, breaker: str | None, config: BreakerConfig | None, hits: Sequence[RateHit]
    ) -> Admission:
        """Admit one call through breaker `breaker` (None: no breaker) and every window in `hits`,
        or say what refused it and for how long."""
        ...
