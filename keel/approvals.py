"""Approvals: the view an approver is shown, the shape a human's answer takes, and its validation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from keel.audit import audit_event
from keel.context import RunContext
from keel.errors import Conflict, Forbidden
from keel.redaction import hidden_fields

if TYPE_CHECKING:
    from keel.policies.matrix import PolicyMatrix
    from keel.records import Approval, Records

__all__ = [
    "ApprovalDecision",
    "DECISIONS",
    "approval_view",
    "check_approver",
    "check_args_hash",
    "parse_decision",
    "record_decision",
    "recorded_resume",
    "refuse",
]

DECISIONS = ("approve", "edit", "reject")
_STATUS = {"approve": "approved", "edit": "edited", "reject": "rejected"}
_DECISION_OF = {"approved": "approve", "edited": "edit", "rejected": "reject", "expired": "reject"}


def approval_view(row: Approval) -> dict[str, Any]:
    """An approval as the approver sees it, wherever it is shown (the node's interrupt, the inbox, the CLI):
    args and resource as stored for the approver (secrets hidden, the rest exactly what will be done), the
    args_hash a decision binds to, and `hidden`, the fields whose value was hidden."""
    return {
        "approval_id": row.approval_id,
        "thread_id": row.thread_id,
        "execution_id": row.execution_id,
        "tool": row.tool,
        "args": row.args,
        "args_hash": row.args_hash,
        "resource": row.resource,
        "hidden": hidden_fields({"args": row.args, "resource": row.resource}),
        "rule": row.rule,
        "reason": row.reason,
        "requester": row.requester,
        "tenant": row.tenant,
        "status": row.status,
        "created_at": row.created_at.isoformat(),
        "expires_at": row.expires_at.isoformat(),
        "decided_by": row.decided_by,
        "decided_at": row.decided_at.isoformat() if row.decided_at else None,
        "decision_reason": row.decision_reason,
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class ApprovalDecision:
    """A human's answer to an approval request."""

    decision: Literal["approve", "edit", "reject"]
    approver: str
    args: dict[str, Any] | None = None
    reason: str | None = None
    args_hash: str | None = None
    """The hash of the args the approver was shown; a mismatch refuses the decision."""

    @property
    def status(self) -> str:
        """The approvals-row status this decision leads to."""
        return _STATUS[self.decision]

    def as_resume(self) -> dict[str, Any]:
        """The value given to `Command(resume=…)`."""
        return {
            "decision": self.decision,
            "approver": self.approver,
            "args": self.args,
            "reason": self.reason,
            "args_hash": self.args_hash,
        }


def parse_decision(value: Any) -> ApprovalDecision:
    """Validate a resume value; a malformed one raises ValueError and the run stays paused."""
    if isinstance(value, ApprovalDecision):
        return value
    if not isinstance(value, dict):
        raise ValueError('resume with {"decision": "approve"|"edit"|"reject", "approver": "<who>", ...}')
    decision = value.get("decision")
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}")
    approver = value.get("approver")
    if not isinstance(approver, str) or not approver.strip():
        raise ValueError("an approval decision needs the approver's name")
    args = value.get("args")
    if decision == "edit" and not isinstance(args, dict):
        raise ValueError("an edit decision needs the new args as a JSON object")
    reason = value.get("reason")
    return ApprovalDecision(
        decision=decision,
        approver=approver.strip(),
        args=args if decision == "edit" else None,
        reason=str(reason) if reason else None,
        args_hash=value.get("args_hash"),
    )


async def record_decision(
    records: Records, policy: PolicyMatrix, row: Approval, choice: ApprovalDecision, approver_role: str
) -> None:
    """Record a human decision on a pending request; exactly one decider wins.

    The caller then resumes the thread; the approval node applies what is recorded here. A request
    past its expiry is recorded as expired whatever was decided.
    """
    await check_approver(records, policy, row, choice, approver_role)
    if row.status != "pending":
        raise Conflict(f"approval {row.approval_id} was already {row.status} by {row.decided_by}")
    await check_args_hash(records, row, choice)
    expired = datetime.now(UTC) >= row.expires_at
    won = await records.decide_approval(
        row.approval_id,
        status="expired" if expired else choice.status,
        decided_by=choice.approver,
        reason=choice.reason,
        edited_args=choice.args,
    )
    if not won:
        raise Conflict(f"approval {row.approval_id} was decided by someone else just now")


async def check_approver(
    records: Records, policy: PolicyMatrix, row: Approval, choice: ApprovalDecision, approver_role: str
) -> None:
    """Only the policy's approver roles decide; a refused attempt is audited, then raised (403)."""
    if not policy.is_approver(approver_role):
        raise await refuse(
            records,
            row,
            approver=choice.approver,
            decision=choice.decision,
            why=f"role {approver_role!r} may not decide approvals",
        )


async def check_args_hash(records: Records, row: Approval, choice: ApprovalDecision) -> None:
    """A decision binds to the args its approver was shown: one made for other args is refused (409,
    audited) before anything is recorded, so a request cannot be approved on the strength of a stale view."""
    if choice.args_hash is None or choice.args_hash == row.args_hash:
        return
    why = (
        f"approval {row.approval_id}: the decision was made for other arguments (args_hash "
        f"{choice.args_hash} is not the request's {row.args_hash}); look at the request again"
    )
    await refuse(records, row, approver=choice.approver, decision=choice.decision, why=why)
    raise Conflict(why)


def recorded_resume(row: Approval) -> dict[str, Any]:
    """The resume value for a decision already recorded (its resume never ran: a crash, a lost request).

    The approval node applies what the row records and ignores this value; it only has to be a valid one.
    """
    return {
        "decision": _DECISION_OF[row.status],
        "approver": row.decided_by or "nobody",
        "args": row.edited_args,
        "reason": row.decision_reason,
        "args_hash": row.args_hash,
    }


async def refuse(
    records: Records, row: Approval, *, approver: str, decision: str | None, why: str
) -> Forbidden:
    """Audit a refused attempt to decide `row` (as `approval_refused`) and return the error to raise.

    The row is the requester's run's (user, role, tenant); the one who tried is in `approver`.
    """
    requester = RunContext(
        user_id=row.requester, role=row.role, tenant=row.tenant, execution_id=row.execution_id
    )
    await records.append_audit(
        audit_event(
            requester,
            row.thread_id,
            event="approval_refused",
            tool=row.tool,
            tool_call_id=row.tool_call_id,
            decision=decision if decision in DECISIONS else None,
            resource=row.resource,
            status="refused",
            approver=approver,
            detail=why,
        )
    )
    return Forbidden(why)
