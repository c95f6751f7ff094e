"""The records database: executions, audit, approvals, tool results and outbox (SQLite or PostgreSQL)."""

from keel.records.store import Records, RecordsUnavailable
from keel.records.types import (
    Approval,
    ApprovalStatus,
    AuditEvent,
    AuditRow,
    Execution,
    ExecutionStatus,
    OutboxMessage,
    ToolResult,
    ToolResultStatus,
    utcnow,
)

__all__ = [
    "Approval",
    "ApprovalStatus",
    "AuditEvent",
    "AuditRow",
    "Execution",
    "ExecutionStatus",
    "OutboxMessage",
    "Records",
    "RecordsUnavailable",
    "ToolResult",
    "ToolResultStatus",
    "utcnow",
]
