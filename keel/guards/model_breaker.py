"""Model breaker: no call to a model whose circuit breaker is open (the run moves down the chain)."""

from __future__ import annotations

from dataclasses import dataclass

from keel.guards.guard import NextCall
from keel.hotstate import BreakerConfig, BreakerStore
from keel.observability.metrics import record_breaker_state

__all__ = ["ModelBreaker"]


@dataclass(frozen=True, slots=True)
class ModelBreaker:
    """Stops the call when the breaker of the run's model is open.

    An early exit, not the check that holds: when this process saw the breaker closed a moment ago
    (`BreakerStore.seen`) it reads nothing; otherwise it reads the breaker (one hot-state round trip).
    The model call's own acquire (keel/guards/model.py) is the atomic check that refuses a call through
    a breaker another replica opened since, and fails closed when the store is down.
    """

    breakers: BreakerStore
    config: BreakerConfig
    reason: str = "llm_unavailable"

    async def check(self, view: NextCall) -> str | None:
        name = f"model:{view.model}"
        state = self.breakers.seen(name)
        if state != "closed":
            state = await self.breakers.state(name, self.config)
        record_breaker_state(name, state)
        if state == "open":
            return f"the circuit breaker of model {view.model} is open"
        return None
