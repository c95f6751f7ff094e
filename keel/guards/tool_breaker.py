"""Tool breaker: no call to a tool whose circuit breaker is open (or half-open with its probe out)."""

from __future__ import annotations

from dataclasses import dataclass

from keel.guards.errors import CircuitOpen
from keel.hotstate import Admission

__all__ = ["AdmittedCall", "ToolBreaker"]


@dataclass(frozen=True, slots=True, kw_only=True)
class AdmittedCall:
    """What the tool guards read: the call's tool and the answer of its one admission step."""

    tool: str
    admission: Admission


@dataclass(frozen=True, slots=True)
class ToolBreaker:
    """Refuses a call while the tool's breaker does not admit it."""

    reason: str = "circuit_open"

    async def check(self, call: AdmittedCall) -> str | None:
        decision = call.admission.breaker
        if not decision.allowed:
            return str(CircuitOpen("tool", call.tool, decision.retry_after_s))
        return None
