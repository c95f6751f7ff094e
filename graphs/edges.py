"""Routing and guard edges. They only read state; the nodes that spend do the writing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from langgraph.runtime import Runtime
from langgraph.types import Send

from keel.context import RunContext
from keel.graphs.state import AgentState
from keel.guards import Guards, NoGuards

__all__ = ["Routes"]


@dataclass(frozen=True, slots=True)
class Routes:
    """The graph's conditional edges, bound to the run's guards."""

    guards: Guards | NoGuards
    """Read before every model call (keel.guards.Guards.before_model, in order)."""
    plan: bool = True
    """Whether runs go through plan (settings.plan_enabled); off, recall leads through the guards to
    decide, and the run has one step (one checkpoint) fewer."""

    async def _guarded(
        self, state: AgentState, runtime: Runtime[RunContext]
    ) -> Literal["decide", "fallback"]:
        """The guard edge before every model call: any failing guard routes to fallback.

        The reason travels with the route (a `Send` carrying the state as this edge saw it), so fallback
        names the guard that failed here even if, by the time it runs, another run has released budget.
        The edge writes nothing: fallback decides what enters the state.
        """
        found = await self.guards.check(state, runtime.context)
        if found is None:
            return "decide"
        return Send(  # type: ignore[return-value]
            "fallback",
            {**state, "terminated_reason": found.reason, "error": found.message or state.get("error")},
        )

    async def after_recall(
        self, state: AgentState, runtime: Runtime[RunContext]
    ) -> Literal["plan", "decide", "fallback"]:
        return "plan" if self.plan else await self._guarded(state, runtime)

    async def after_plan(
        self, state: AgentState, runtime: Runtime[RunContext]
    ) -> Literal["decide", "fallback"]:
        return await self._guarded(state, runtime)

    def after_decide(self, state: AgentState) -> Literal["permission_check", "tool", "finalize", "fallback"]:
        """A turn whose every call decide found allowed goes to tool; any other to permission_check."""
        if state.get("terminated_reason"):
            return "fallback"
        if pending := state.get("pending"):
            if all(c.get("status") == "allowed" for c in pending):
                return "tool"
            return "permission_check"
        return "finalize"

    async def after_permission(
        self, state: AgentState, runtime: Runtime[RunContext]
    ) -> Literal["approval", "tool", "decide", "fallback"]:
        return await self._next_for_pending(state, runtime)

    async def after_approval(
        self, state: AgentState, runtime: Runtime[RunContext]
    ) -> Literal["approval", "tool", "decide", "fallback"]:
        return await self._next_for_pending(state, runtime)

    async def after_tool(
        self, state: AgentState, runtime: Runtime[RunContext]
    ) -> Literal["decide", "fallback"]:
        return await self._guarded(state, runtime)

    async def after_fallback(
        self, state: AgentState, runtime: Runtime[RunContext]
    ) -> Literal["decide", "fallback", "finalize"]:
        """Back to decide (through the guards) when fallback moved the run to the next model."""
        return "finalize" if state.get("terminated_reason") else await self._guarded(state, runtime)

    async def _next_for_pending(
        self, state: AgentState, runtime: Runtime[RunContext]
    ) -> Literal["approval", "tool", "decide", "fallback"]:
        statuses = {c.get("status") for c in state.get("pending", [])}
        if "new" in statuses:
            raise ValueError("a tool call reached routing without a permission decision")
        if "ask" in statuses:
            return "approval"
        if "allowed" in statuses:
            return "tool"
        return await self._guarded(state, runtime)
