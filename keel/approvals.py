"""Approval decisions: the shape a human's answer takes, and its validation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from keel.errors import Conflict, Forbidden

if TYPE_CHECKING:
    from keel.records import Approval, Records
    from policies.matrix import PolicyMatrix

__all__ = ["ApprovalDecision", "parse_decision", "record_decision", "DECISIONS"]

DECISIONS = ("approve", "edit", "reject")
_STATUS = {"approve": "approved", "edit": "edited", "reject": "rejected"}


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
    if not policy.is_approver(approver_role):
        raise Forbidden(f"role {approver_role!r} may not decide approvals")
    if row.status != "pending":
        raise Conflict(f"approval {row.approval_id} was already {row.status} by {row.decided_by}")
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
