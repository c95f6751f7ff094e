"""permission_check: each new tool call is validated and put to the permission matrix."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime

from keel.audit import audit_event
from keel.context import RunContext
from keel.graphs.state import AgentState, PendingCall
from keel.nodes._shared import thread_id_of
from keel.policies.watcher import PolicySource
from keel.records import Records
from keel.redaction import redact_text
from keel.tools.executor import ToolCallRefused, ToolExecutor

__all__ = ["make_permission_check"]


def _refusal(call: PendingCall, text: str) -> ToolMessage:
    """A refusal enters state like tool output does: redacted (it may quote the model's args)."""
    name = call["name"] or "unknown"
    return ToolMessage(content=redact_text(text), tool_call_id=call["id"], name=name, status="error")


def make_permission_check(*, records: Records, policy: PolicySource, executor: ToolExecutor):
    """The permission_check node: allow → tool, ask → approval, deny/invalid → a ToolMessage saying so."""

    async def permission_check(
        state: AgentState, config: RunnableConfig, runtime: Runtime[RunContext]
    ) -> dict[str, Any]:
        run, thread = runtime.context, thread_id_of(config)
        pending: list[PendingCall] = []
        replies: list[ToolMessage] = []
        refused = list(state.get("tools_refused", []))
        matrix = policy.current()  # picks up an edited policy file
        seen = 0
        for call in state.get("pending", []):
            if call.get("status") != "new":
                pending.append(call)
                continue
            seen += 1
            try:
                if call.get("args") is None:
                    raise ToolCallRefused(
                        "invalid_args", f"arguments for {call['name']!r} are not valid JSON"
                    )
                checked = await executor.check(call["name"], call["args"], run, position=seen)
            except ToolCallRefused as exc:
                await records.append_audit(
                    audit_event(
                        run,
                        thread,
                        event="permission",
                        tool=call["name"] or None,
                        tool_call_id=call["id"],
                        args=call.get("args"),
                        decision="invalid",
                        status=exc.kind,
                        detail=exc.message,
                    )
                )
                replies.append(_refusal(call, f"error: {exc.message}. Fix the call and try again."))
                refused.append(call["name"] or "unknown")
                pending.append({**call, "status": "done"})
                continue
            decision = matrix.decide(run.role, call["name"], checked.resource)
            rule = decision.describe()
            await records.append_audit(
                audit_event(
                    run,
                    thread,
                    event="permission",
                    tool=call["name"],
                    tool_call_id=call["id"],
                    args=call["args"],
                    decision=decision.effect,
                    rule=rule,
                    resource=checked.resource,
                    status="denied" if decision.effect == "deny" else None,
                )
            )
            if decision.effect == "deny":
                replies.append(_refusal(call, f"denied by policy ({rule}). Do not retry this call."))
                refused.append(call["name"])
                pending.append({**call, "status": "done", "resource": checked.resource, "rule": rule})
            else:
                status = "allowed" if decision.effect == "allow" else "ask"
                pending.append({**call, "status": status, "resource": checked.resource, "rule": rule})
        return {"messages": replies, "pending": pending, "tools_refused": refused}

    return permission_check
