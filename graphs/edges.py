"""Routing and guard edges. They only read state; the nodes that spend do the writing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from graphs.state import AgentState
from policies.guards import RunLimits, first_failure

__all__ = ["Routes"]


@dataclass(frozen=True, slots=True)
class Routes:
    """The graph's conditional edges, bound to the run limits."""

    limits: RunLimits

    def _guarded(self, state: AgentState) -> Literal["decide", "fallback"]:
        """The guard edge before every model call: any failing guard routes to fallback."""
        return "fallback" if first_failure(state, self.limits) else "decide"

    def after_plan(self, state: AgentState) -> Literal["decide", "fallback"]:
        return self._guarded(state)

    def after_decide(self, state: AgentState) -> Literal["permission_check", "finalize", "fallback"]:
        if state.get("terminated_reason"):
            return "fallback"
        if state.get("pending"):
            return "permission_check"
        return "finalize"

    def after_permission(self, state: AgentState) -> Literal["approval", "tool", "decide", "fallback"]:
        return self._next_for_pending(state)

    def after_approval(self, state: AgentState) -> Literal["approval", "tool", "decide", "fallback"]:
        return self._next_for_pending(state)

    def after_tool(self, state: AgentState) -> Literal["decide", "fallback"]:
        return self._guarded(state)

    def _next_for_pending(self, state: AgentState) -> Literal["approval", "tool", "decide", "fallback"]:
        statuses = {c.get("status") for c in state.get("pending", [])}
        if "new" in statuses:
            raise ValueError("a tool call reached routing without a permission decision")
        if "ask" in statuses:
            return "approval"
        if "allowed" in statuses:
            return "tool"
        return self._guarded(state)
