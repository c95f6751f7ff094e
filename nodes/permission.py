"""permission_check: each new tool call is validated and put to the permission matrix."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime

from keel.audit import audit_event
from keel.context import RunContext
from keel.graphs.state import AgentState, PendingCall
from keel.guards import Guards, NoGuards
from keel.nodes._shared import settle_owed, thread_id_of
from keel.policies.matrix import PolicyMatrix
from keel.policies.watcher import PolicySource
from keel.records import AuditEvent, Records
from keel.redaction import redact_text
from keel.tools.executor import ToolCallRefused, ToolExecutor

__all__ = ["make_permission_check", "allowed_event", "check_turn", "TurnDecisions"]


def _refusal(call: PendingCall, text: str) -> ToolMessage:
    """A refusal enters state like tool output does: redacted (it may quote the model's args)."""
    name = call["name"] or "unknown"
    return ToolMessage(content=redact_text(text), tool_call_id=call["id"], name=name, status="error")


def allowed_event(run: RunContext, thread: str, call: PendingCall) -> AuditEvent:
    """The audit row of a call the policy allowed (written by the tool step, with the call's result)."""
    return audit_event(
        run,
        thread,
        event="permission",
        tool=call["name"],
        tool_call_id=call["id"],
        args=call["args"],
        decision="allow",
        rule=call.get("rule"),
        resource=call.get("resource"),
        status=None,
    )


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
        out.events.append(
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
            out.replies.append(_refusal(call, f"denied by policy ({rule}). Do not retry this call."))
            out.refused.append(call["name"])
            out.pending.append({**decided, "status": "done"})
        else:
            out.pending.append({**decided, "status": "ask"})
    return out


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
