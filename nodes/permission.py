"""permission_check: each new tool call is validated and put to the permission matrix."""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime

from keel.context import RunContext
from keel.graphs.state import AgentState
from keel.guards import Guards, NoGuards
from keel.nodes._shared import settle_owed, thread_id_of
from keel.nodes._turn import check_turn
from keel.policies.watcher import PolicySource
from keel.records import Records
from keel.tools.executor import ToolExecutor

__all__ = ["make_permission_check"]


def make_permission_check(
    *, records: Records, policy: PolicySource, executor: ToolExecutor, guards: Guards | NoGuards
):
    """The permission_check node, for a turn with a call that is not simply allowed (decide sends a turn
    whose every call is allowed straight to tool): allow → tool, ask → approval, deny/invalid → a
    ToolMessage saying so. It records the refused and asked calls' rows as one transaction (with the model
    charges the run still owes); an allowed call's row goes with its result."""

    async def permission_check(
        state: AgentState, config: RunnableConfig, runtime: Runtime[RunContext]
    ) -> dict[str, Any]:
        run, thread = runtime.context, thread_id_of(config)
        turn = await check_turn(state, run, thread, policy.current(), executor)
        update: dict[str, Any] = {
            "messages": turn.replies,
            "pending": turn.pending,
            "tools_refused": turn.refused,
        }
        if turn.events:
            async with records.transaction() as tx:
                await records.append_audit_many(turn.events, conn=tx)  # one multi-row insert
                update |= await settle_owed(guards, state, conn=tx)
        return update

    return permission_check
