"""Feedback on an execution: a user's score in [-1, 1] (-1/0/1, or a rating 0..1) and an optional comment.

`give_feedback` is the one path every face takes (`POST /keel/feedback`, `Keel.feedback`, `keel feedback`):
- only the execution's owner, or an admin, may give it; anyone else is told there is no such execution
  (NotFound, as for an unknown id: whether another user's execution exists is not revealed);
- a score outside [-1, 1] is a ValueError naming the rule, before anything is read or written;
- a user has one score per execution: giving it again replaces it (a user may change their mind);
- the feedback row and an audit row `feedback` (who gave what) commit in one transaction, or neither;
- the comment is redacted before it is stored, audited or sent anywhere;
- with LangSmith tracing on, the score is then sent as feedback on the execution's run; LangSmith failing
  is a logged warning, never a failed feedback.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from keel.errors import NotFound
from keel.policies import ADMIN_ROLE
from keel.records import AuditEvent, Feedback
from keel.records.feedback import SCORE_RULE, check_score
from keel.redaction import redact_text

if TYPE_CHECKING:
    from keel.observability.langsmith import LangSmith
    from keel.records import Records

__all__ = [
    "FEEDBACK_EVENT",
    "MAX_COMMENT_CHARS",
    "SCORE_RULE",
    "check_score",
    "feedback_view",
    "give_feedback",
    "score_number",
]

FEEDBACK_EVENT = "feedback"
MAX_COMMENT_CHARS = 2000


def score_number(score: Decimal) -> int | float:
    """A stored score as a JSON number: an int when whole (-1, 0, 1), else a float (0.75)."""
    return int(score) if score == score.to_integral_value() else float(score)


def feedback_view(row: Feedback) -> dict[str, Any]:
    """A feedback row as the faces show it (JSON-friendly, the score a number)."""
    return {**row.as_dict(), "score": score_number(row.score)}


async def give_feedback(
    records: Records,
    *,
    execution_id: str,
    score: object,
    comment: str | None,
    user_id: str,
    role: str,
    tenant: str | None = None,
    langsmith: LangSmith | None = None,
) -> Feedback:
    """Store `user_id`'s feedback on one of their executions (an admin: any), with its audit row in the same
    transaction; return the stored row. `tenant`: the caller's (default: the execution's)."""
    value = check_score(score)
    if comment is not None and len(comment) > MAX_COMMENT_CHARS:
        raise ValueError(f"comment must be at most {MAX_COMMENT_CHARS} characters, got {len(comment)}")
    ex = await records.get_execution(execution_id)
    if ex is None or (ex.user_id != user_id and role != ADMIN_ROLE):
        raise NotFound(f"no execution {execution_id}")
    text = redact_text(comment) if comment else None
    shown = f"{value.normalize():+f}"
    async with records.transaction() as conn:
        row = await records.add_feedback(
            execution_id=ex.execution_id,
            thread_id=ex.thread_id,
            user_id=user_id,
            role=role,
            score=value,
            comment=text,
            version=ex.version,
            conn=conn,
        )
        await records.append_audit(
            AuditEvent(
                execution_id=ex.execution_id,
                thread_id=ex.thread_id,
                user_id=user_id,
                role=role,
                tenant=tenant or ex.tenant,
                event=FEEDBACK_EVENT,
                args={"score": score_number(value), "comment": text},
                detail=f"feedback {shown}" + (f": {text}" if text else ""),
            ),
            conn=conn,
        )
    if langsmith is not None:
        await langsmith.send_feedback(ex.execution_id, float(row.score), row.comment)
    return row
