"""tool: runs the allowed calls of the turn through the executor (exactly once per tool_call_id)."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime
from sqlalchemy.exc import SQLAlchemyError

from keel.context import RunContext
from keel.costs import PriceTable
from keel.errors import describe
from keel.graphs.state import AgentState
from keel.guards import Guards
from keel.nodes._shared import thread_id_of
from keel.observability.instrument import traced_tool_call
from keel.observability.telemetry import Telemetry
from keel.records import RecordsUnavailable
from keel.redaction import redact_text
from keel.tools.executor import ToolExecutor

__all__ = ["make_tool"]


def _records_failed(call: dict[str, Any], exc: BaseException) -> ToolMessage:
    """The model's answer for a call whose records write failed (the cause redacted: it enters state)."""
    reason = redact_text(describe(exc))[:300]
    return ToolMessage(
        content=(
            f"error: {call['name']} could not be recorded (records database error: {reason}); "
            "whether it took effect is unknown: check before repeating it"
        ),
        tool_call_id=call["id"],
        name=call["name"],
        status="error",
    )


def make_tool(*, executor: ToolExecutor, guards: Guards | None, prices: PriceTable, telemetry: Telemetry):
    """The tool node. When it returns, every call of the turn has its ToolMessage. A call costs what the
    guards charged for it (the price table's list price in the unguarded baseline)."""

    async def tool(state: AgentState, config: RunnableConfig, runtime: Runtime[RunContext]) -> dict[str, Any]:
        run, thread = runtime.context, thread_id_of(config)
        used = list(state.get("tools_used", []))
        failed = list(state.get("tools_failed", []))
        cost = state.get("run_cost", 0.0)
        messages = []
        for call in state.get("pending", []):
            if call.get("status") != "allowed":
                continue
            list_price = None if guards is not None else prices.tool_cost(call["name"])
            try:
                outcome = await traced_tool_call(
                    telemetry,
                    call,
                    executor.execute(
                        call["id"],
                        call["name"],
                        call["args"],
                        run,
                        thread,
                        deadline=state.get("deadline", float("inf")),
                    ),
                    list_price=list_price,
                )
            except (RecordsUnavailable, SQLAlchemyError) as exc:
                # The records write around the call failed: the model hears it as this call's error, so the
                # run goes on (or ends) honestly instead of dying with the execution left `running`.
                messages.append(_records_failed(call, exc))
                failed.append(call["name"])
                continue
            messages.append(outcome.message)
            if outcome.status in ("ok", "replayed"):
                used.append(call["name"])
            else:
                failed.append(call["name"])
            if outcome.status == "replayed":  # charged once, when it ran; counted if it ran in this run
                cost += outcome.cost
            else:
                cost += outcome.cost if list_price is None else list_price
        return {
            "messages": messages,
            "pending": [],
            "tools_used": used,
            "tools_failed": failed,
            "run_cost": cost,
        }

    return tool
