"""Builds audit events for the current run, with arguments and details redacted."""

from __future__ import annotations

from typing import Any

from keel.context import RunContext
from keel.records import AuditEvent
from keel.redaction import redact, redact_text

__all__ = ["audit_event"]


def audit_event(
    run: RunContext, thread_id: str, *, event: str, args: Any = None, detail: str | None = None, **fields: Any
) -> AuditEvent:
    """An audit event for `run`, secrets removed from `args`, `detail` and every other field: the tool name
    and the resource come from the model (a path or a name may carry a key); the row keeps the evidence,
    never the secret."""
    return AuditEvent(
        execution_id=run.execution_id,
        thread_id=thread_id,
        user_id=run.user_id,
        role=run.role,
        tenant=run.tenant,
        event=event,
        args=redact(args) if args is not None else None,
        detail=redact_text(detail) if detail else detail,
        **redact(fields),
    )
