"""Feedback on a run (a score and an optional comment), kept as an append-only audit event.

Until the records schema has a feedback table (migration 0004_feedback, after the audit chain's 0003),
feedback is stored in the audit log as `event="feedback"`, `args={"score": …, "comment": …}`, so it
shares the audit trail's guarantees and shows up in `keel audit tail`.
"""

from __future__ import annotations

from typing import Any

from keel.errors import NotFound
from keel.identity import Principal
from keel.policies import ADMIN_ROLE
from keel.records import AuditEvent, Records
from keel.redaction import redact_text

__all__ = ["record_feedback", "FEEDBACK_EVENT"]

FEEDBACK_EVENT = "feedback"


async def record_feedback(
    records: Records, who: Principal, *, execution_id: str, score: int, comment: str | None
) -> dict[str, Any]:
    """Append feedback on one of the caller's executions (admins: any execution)."""
    ex = await records.get_execution(execution_id)
    if ex is None or (ex.user_id != who.user_id and who.role != ADMIN_ROLE):
        raise NotFound(f"no execution {execution_id}")
    text = redact_text(comment) if comment else None
    audit_id = await records.append_audit(
        AuditEvent(
            execution_id=ex.execution_id,
            thread_id=ex.thread_id,
            user_id=who.user_id,
            role=who.role,
            tenant=who.tenant,
            event=FEEDBACK_EVENT,
            args={"score": score, "comment": text},
            detail=f"feedback {score:+d}" + (f": {text}" if text else ""),
        )
    )
    return {"id": audit_id, "execution_id": ex.execution_id, "thread_id": ex.thread_id, "score": score}
