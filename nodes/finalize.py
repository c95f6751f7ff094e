"""finalize: filter the answer, write the execution record, queue the run's memory, end the run."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime
from sqlalchemy.ext.asyncio import AsyncConnection

from keel.context import RunContext
from keel.graphs.state import AgentState
from keel.guards import Guards, NoGuards
from keel.memory.stores import MemoryBackends
from keel.nodes._shared import settle_owed
from keel.records import Records, RunMemory
from keel.redaction import redact_text
from keel.textsafe import safe_text

__all__ = ["make_finalize"]


def make_finalize(
    *,
    records: Records,
    guards: Guards | NoGuards,
    memory: MemoryBackends | None,
    on_finished: Callable[[], Awaitable[None]] | None = None,
):
    """The finalize node. `on_finished`: awaited after the execution record commits (a rollout arm's guard
    rails judge the arm then; it never raises)."""

    async def finalize(
        state: AgentState, config: RunnableConfig, runtime: Runtime[RunContext]
    ) -> dict[str, Any]:
        run = runtime.context
        last = next((m for m in reversed(state["messages"]) if isinstance(m, AIMessage)), None)
        raw = last.text if last is not None else ""
        answer = safe_text(redact_text(raw))  # stored in records and in the checkpoint's jsonb
        reason = state.get("terminated_reason")
        status = "terminated" if reason else "succeeded"
        if reason is None and _every_tool_call_refused(state):
            # The model answered, but nothing it tried to do was done: not a plain success.
            status, reason = "failed", "tools_refused"
        ended = time.time()
        remember = memory is not None and memory.long_term is not None and state.get("task", "").strip()
        owing = state.get("owed_charges") or []
        async with records.transaction() as tx:  # the step's one transaction
            # The ledger knows calls a crash hid from the state: it is the truth (with what is owed).
            cost = await guards.spent_by(run.execution_id, state.get("run_cost", 0.0), conn=tx, owed=owing)
            await _record(records, tx, run, state, status, reason, answer, cost, ended)
            if remember:
                # Off the request path: the memory writer embeds and stores it (keel/memory/writer.py);
                # queued in this transaction, so it is never lost once the execution is recorded.
                await records.enqueue_memory(
                    RunMemory(
                        user_id=run.user_id,
                        tenant=run.tenant,
                        execution_id=run.execution_id,
                        task=state.get("task", ""),
                        tools_used=state.get("tools_used", []),
                        tools_failed=state.get("tools_failed", []),
                        status=status,
                        reason=reason,
                        answer=answer,
                    ),
                    conn=tx,
                )
            # Last, right before the commit: the settlement locks the user's month row, shared by the
            # user's other runs, for no more than this one round trip.
            owed = await settle_owed(guards, state, conn=tx)
        if remember and memory is not None:
            memory.wake_writer()  # after the commit: the writer finds the row
        if on_finished is not None:
            await on_finished()
        out: dict[str, Any] = {"status": status, "answer": answer, "terminated_reason": reason, **owed}
        if last is not None and answer != raw:
            out["messages"] = [AIMessage(content=answer, id=last.id, name=last.name)]
        return out

    return finalize


def _every_tool_call_refused(state: AgentState) -> bool:
    """At least one tool call was attempted and none ran successfully (all denied, rejected or failed)."""
    attempted = bool(state.get("tools_failed") or state.get("tools_refused"))
    return attempted and not state.get("tools_used")


async def _record(
    records: Records,
    conn: AsyncConnection,
    run: RunContext,
    state: AgentState,
    status: str,
    reason: str | None,
    answer: str,
    cost: float,
    ended: float,
) -> None:
    """The execution record's outcome and metrics, inside the step's transaction."""
    await records.update_execution(
        run.execution_id,
        conn=conn,
        status=status,
        terminated_reason=reason,
        ended_at=datetime.fromtimestamp(ended, UTC),
        duration_ms=int((ended - state.get("started_at", ended)) * 1000),
        steps=state.get("steps", 0),
        input_tokens=state.get("input_tokens", 0),
        output_tokens=state.get("output_tokens", 0),
        total_tokens=state.get("input_tokens", 0) + state.get("output_tokens", 0),
        cost=cost,
        cached_model_calls=state.get("cached_model_calls", 0),
        tools_used=state.get("tools_used", []),
        tools_failed=state.get("tools_failed", []),
        tools_refused=state.get("tools_refused", []),
        succeeded=reason is None,
        answer=answer,
        error=state.get("error"),
    )
