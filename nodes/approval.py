"""approval: a call the policy says `ask` for waits here (a LangGraph interrupt) for a human decision."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime
from langgraph.types import interrupt

from keel.approvals import ApprovalDecision, approval_view, check_args_hash, parse_decision, refuse
from keel.audit import audit_event
from keel.context import RunContext
from keel.errors import Forbidden
from keel.graphs.state import AgentState, PendingCall
from keel.identity import decision_from_server, run_context
from keel.nodes._shared import thread_id_of
from keel.policies.watcher import PolicySource
from keel.records import Approval, Records
from keel.redaction import for_approver
from keel.tools.executor import ToolCallRefused, ToolExecutor, args_digest

__all__ = ["make_approval", "approval_id_for"]

_AUDIT_DECISION = {"approved": "approve", "edited": "edit", "rejected": "reject", "expired": "expired"}


def approval_id_for(thread_id: str, tool_call_id: str) -> str:
    """The approval id of a call: stable, so a re-run node finds its request again."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"keel:{thread_id}:{tool_call_id}"))


def make_approval(*, records: Records, policy: PolicySource, executor: ToolExecutor, ttl_s: float):
    """The approval node. Everything before `interrupt()` is idempotent, since a resume re-runs the node.
    A request expires after its rule's `expires_s`, else `ttl_s`."""

    async def _request(call: PendingCall, run: RunContext, thread: str) -> Approval:
        rule = policy.current().decide(run.role, call["name"], call["resource"]).rule
        ttl = rule.expires_s if rule is not None and rule.expires_s else ttl_s
        now = datetime.now(UTC)
        stored = await records.create_approval(
            Approval(
                approval_id=approval_id_for(thread, call["id"]),
                thread_id=thread,
                execution_id=run.execution_id,
                tool_call_id=call["id"],
                tool=call["name"],
                args=for_approver(call["args"]),
                args_hash=args_digest(call["args"]),
                resource=for_approver(call["resource"]),
                rule=call.get("rule", ""),
                requester=run.user_id,
                role=run.role,
                tenant=run.tenant,
                reason=f"policy asks for approval of {call['name']} on {for_approver(call['resource'])}",
                created_at=now,
                expires_at=now + timedelta(seconds=ttl),
                status="pending",
            )
        )
        await records.update_execution(run.execution_id, status="awaiting_approval")
        return stored

    async def _settle(row: Approval, answer: Any) -> Approval:
        """Record the decision carried by the resume unless one was recorded already (by the CLI or API)."""
        if row.status != "pending":
            return row
        decision: ApprovalDecision = parse_decision(answer)
        await check_args_hash(records, row, decision)  # the same 409 (audited) as the CLI's and the API's
        await records.decide_approval(
            row.approval_id,
            status="expired" if datetime.now(UTC) >= row.expires_at else decision.status,
            decided_by=decision.approver,
            reason=decision.reason,
            edited_args=decision.args,
        )
        return await records.get_approval(row.approval_id) or row

    async def approval(
        state: AgentState, config: RunnableConfig, runtime: Runtime[RunContext]
    ) -> dict[str, Any]:
        run = run_context(runtime, config, execution_id=state.get("execution_id"))
        thread = thread_id_of(config)
        pending = list(state.get("pending", []))
        index = next(i for i, c in enumerate(pending) if c.get("status") == "ask")
        call = pending[index]
        row = await _request(call, run, thread)
        answer = interrupt(approval_view(row))
        if row.status == "pending":  # not decided through keel: a raw resume on the Server API
            try:
                answer = decision_from_server(
                    config, runtime, answer, is_approver=policy.current().is_approver
                )
            except Forbidden as exc:
                raise await refuse(
                    records, row, approver=run.user_id, decision=_decision_in(answer), why=str(exc)
                ) from None
        row = await _settle(row, answer)
        await records.update_execution(run.execution_id, status="running")
        # Hours waiting for a human are not the run's working time: push the deadline back by the pause.
        paused_s = max(0.0, time.time() - row.created_at.timestamp())
        updated, reply = await _apply(policy, executor, run, call, row)
        pending[index] = updated
        await records.append_audit(
            audit_event(
                run,
                thread,
                event="approval_decision",
                tool=call["name"],
                tool_call_id=call["id"],
                args=updated.get("args"),
                decision=_AUDIT_DECISION[row.status],
                rule=updated.get("rule"),
                resource=updated.get("resource"),
                status=updated["status"] if updated["status"] == "allowed" else "rejected",
                approver=row.decided_by,
                detail=f"{row.status} by {row.decided_by or 'nobody'}"
                + (f": {row.decision_reason}" if row.decision_reason else ""),
            )
        )
        out: dict[str, Any] = {"pending": pending}
        if (deadline := state.get("deadline")) is not None:
            out["deadline"] = deadline + paused_s
        if reply is not None:
            out["messages"] = [reply]
            out["tools_refused"] = [*state.get("tools_refused", []), call["name"]]
        return out

    return approval


def _decision_in(answer: Any) -> str | None:
    """The decision a resume value asks for, if it names one."""
    return answer.get("decision") if isinstance(answer, dict) else None


async def _apply(
    policy: PolicySource, executor: ToolExecutor, run: RunContext, call: PendingCall, row: Approval
) -> tuple[PendingCall, ToolMessage | None]:
    """The call after the decision, and the ToolMessage the model gets when it will not run."""

    def refused(text: str) -> tuple[PendingCall, ToolMessage]:
        message = ToolMessage(content=text, tool_call_id=call["id"], name=call["name"], status="error")
        return {**call, "status": "done"}, message

    if row.status == "approved":
        return {**call, "status": "allowed", "approved_by": row.decided_by or ""}, None
    if row.status == "edited":
        try:
            checked = await executor.check(call["name"], row.edited_args or {}, run)
        except ToolCallRefused as exc:
            return refused(f"the approver's edit is invalid: {exc.message}")
        decision = policy.current().decide(run.role, call["name"], checked.resource)
        if decision.effect == "deny":
            return refused(f"the edited call is denied by policy ({decision.describe()})")
        return {
            **call,
            "args": row.edited_args or {},
            "status": "allowed",
            "resource": checked.resource,
            "rule": decision.describe(),
            "approved_by": row.decided_by or "",
        }, None
    why = "the approval request expired" if row.status == "expired" else f"rejected by {row.decided_by}"
    reason = f": {row.decision_reason}" if row.decision_reason else ""
    return refused(f"{why}{reason}. The call was not executed; do not retry it.")
