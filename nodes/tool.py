"""tool: runs the allowed calls of the turn through the executor (exactly once per tool_call_id)."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime
from sqlalchemy.exc import SQLAlchemyError

from keel.context import RunContext
from keel.errors import describe
from keel.graphs.state import AgentState
from keel.nodes._shared import thread_id_of
from keel.nodes._turn import allowed_event
from keel.observability.instrument import traced_tool_call
from keel.observability.telemetry import Telemetry
from keel.records import RecordsUnavailable
from keel.redaction import redact_text
from keel.tool_status import ToolStatus
from keel.tools.executor import Carried, ToolExecutor

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


_RECORDED_IN: dict[ToolStatus, str] = {
    "ok": "tools_used",
    "replayed": "tools_used",
    "failed": "tools_failed",
    "timeout": "tools_failed",
    "refused": "tools_refused",
    "invalid": "tools_refused",
}
"""Which list of the execution record a call's status goes to: tools_failed holds only calls that ran
and broke (the health summary's tool failure rate); refusals and invalid calls are the model's or a
guard's doing and go to tools_refused."""


def make_tool(*, executor: ToolExecutor, telemetry: Telemetry):
    """The tool node. When it returns, every call of the turn has its ToolMessage. A call costs what the
    executor's tool guard charged for it (the list price under the benchmark's NoToolGuard)."""

    async def tool(state: AgentState, config: RunnableConfig, runtime: Runtime[RunContext]) -> dict[str, Any]:
        run, thread = runtime.context, thread_id_of(config)
        tally = {key: list(state.get(key, [])) for key in ("tools_used", "tools_failed", "tools_refused")}
        cost = state.get("run_cost", 0.0)
        owed = tuple(state.get("owed_charges") or ())  # settled with the first call's records
        messages = []
        for call in state.get("pending", []):
            if call.get("status") != "allowed":
                continue
            decided = (allowed_event(run, thread, call),) if call.get("audit_with_result") else ()
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
                        carried=Carried(audit=decided, owed=owed),
                    ),
                )
            except (RecordsUnavailable, SQLAlchemyError) as exc:
                # The records write around the call failed: the model hears it as this call's error, so the
                # run goes on (or ends) honestly instead of dying with the execution left `running`.
                messages.append(_records_failed(call, exc))
                tally["tools_failed"].append(call["name"])
                continue
            owed = ()
            messages.append(outcome.message)
            tally[_RECORDED_IN[outcome.status]].append(call["name"])
            cost += outcome.cost  # a replayed call: charged when it ran, counted if it ran in this run
        return {
            "messages": messages,
            "pending": [],
            "run_cost": cost,
            "owed_charges": list(owed),
            **tally,
        }

    return tool
