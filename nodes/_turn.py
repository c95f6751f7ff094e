"""The permission check of a model turn, shared by the nodes that run it: decide (an all-allowed turn goes
straight to tool), permission_check (any other turn, whose decisions it records) and tool (which writes
an allowed call's decision row ahead of the call)."""

from __future__ import annotations

from dataclasses import dataclass, field

from langchain_core.messages import ToolMessage

from keel.audit import audit_event
from keel.context import RunContext
from keel.graphs.state import AgentState, PendingCall
from keel.policies.matrix import PolicyMatrix
from keel.records import AuditEvent
from keel.redaction import redact_text
from keel.tools.executor import ToolCallRefused, ToolExecutor

__all__ = ["TurnDecisions", "allowed_event", "check_turn"]


def _refusal(call: PendingCall, text: str) -> ToolMessage:
    """A refusal enters state like tool output does: redacted (it may quote the model's args)."""
    name = call["name"] or "unknown"
    return ToolMessage(content=redact_text(text), tool_call_id=call["id"], name=name, status="error")


def decision_event(
    run: RunContext,
    thread: str,
    call: PendingCall,
    decision: str,
    *,
    rule: str | None,
    resource: str | None,
    status: str | None = None,
) -> AuditEvent:
    """The audit row of the permission matrix's decision on a call."""
    return audit_event(
        run,
        thread,
        event="permission",
        tool=call["name"],
        tool_call_id=call["id"],
        args=call["args"],
        decision=decision,
        rule=rule,
        resource=resource,
        status=status,
    )


def allowed_event(run: RunContext, thread: str, call: PendingCall) -> AuditEvent:
    """The audit row of a call the policy allowed (written by the tool step, ahead of the call)."""
    return decision_event(run, thread, call, "allow", rule=call.get("rule"), resource=call.get("resource"))


@dataclass(slots=True)
class TurnDecisions:
    """What the permission check decided for the new calls of a model turn."""

    pending: list[PendingCall] = field(default_factory=list)
    replies: list[ToolMessage] = field(default_factory=list)
    """The model's answers for refused calls (invalid, denied)."""
    events: list[AuditEvent] = field(default_factory=list)
    """Audit rows to write now: refused and asked calls (an allowed call's row goes with its result)."""
    refused: list[str] = field(default_factory=list)

    @property
    def all_allowed(self) -> bool:
        """Every call may run as it is: nothing to record before the tool step."""
        return not self.events and all(c.get("status") == "allowed" for c in self.pending)


async def check_turn(
    state: AgentState, run: RunContext, thread: str, matrix: PolicyMatrix, executor: ToolExecutor
) -> TurnDecisions:
    """Validate each new call of the turn and put it to the permission matrix (no I/O: the writes are
    the caller's). decide runs it right after the model answers, to send a turn whose every call is
    allowed straight to tool; permission_check runs it for any other turn and records the decisions."""
    out = TurnDecisions(refused=list(state.get("tools_refused", [])))
    seen = 0
    for call in state.get("pending", []):
        if call.get("status") != "new":
            out.pending.append(call)
            continue
        seen += 1
        try:
            if call.get("args") is None:
                raise ToolCallRefused("invalid_args", f"arguments for {call['name']!r} are not valid JSON")
            checked = await executor.check(call["name"], call["args"], run, position=seen)
        except ToolCallRefused as exc:
            out.events.append(
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
            out.replies.append(_refusal(call, f"error: {exc.message}. Fix the call and try again."))
            out.refused.append(call["name"] or "unknown")
            out.pending.append({**call, "status": "done"})
            continue
        decision = matrix.decide(run.role, call["name"], checked.resource)
        rule = decision.describe()
        decided: PendingCall = {**call, "resource": checked.resource, "rule": rule}
        if decision.effect == "allow":
            out.pending.append({**decided, "status": "allowed", "audit_with_result": True})
            continue
        status = "denied" if decision.effect == "deny" else None
        out.events.append(
            decision_event(
                run, thread, call, decision.effect, rule=rule, resource=checked.resource, status=status
            )
        )
        if decision.effect == "deny":
            out.replies.append(_refusal(call, f"denied by policy ({rule}). Do not retry this call."))
            out.refused.append(call["name"])
            out.pending.append({**decided, "status": "done"})
        else:
            out.pending.append({**decided, "status": "ask"})
    return out
