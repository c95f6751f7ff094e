"""Model breaker: no call to a model whose circuit breaker is open (the run moves down the chain)."""

from __future__ import annotations

from dataclasses import dataclass

from keel.guards.guard import NextCall
from keel.hotstate import BreakerConfig, BreakerStore
from keel.observability.metrics import record_breaker_state

__all__ = ["ModelBreaker"]


@dataclass(frozen=True, slots=True)
class ModelBreaker:
    """Stops the call when the breaker of the run's model is open (one hot-state read)."""

    breakers: BreakerStore
    config: BreakerConfig
    reason: str = "llm_unavailable"

    async def check(self, view: NextCall) -> str | None:
        state = await self.breakers.state(f"model:{view.model}", self.config)
        record_breaker_state(f"model:{view.model}", state)
        if state == "open":
            return f"the circuit breaker of model {view.model} is open"
        return None
