"""The records database: executions, audit, approvals, tool results, outbox, the run-memory queue and
the agent versions and feedback (SQLite or PostgreSQL).

The value types load eagerly (stdlib only); `Records` and `RecordsUnavailable` load SQLAlchemy, so they
are imported on first use (PEP 562): `keel --help` and code that only names a record type stay fast.
"""

from typing import TYPE_CHECKING, Any

from keel.records.types import (
    AgentVersionRow,
    Approval,
    ApprovalStatus,
    AuditEvent,
    AuditHead,
    AuditRow,
    Execution,
    ExecutionStatus,
    Feedback,
    OutboxMessage,
    QueuedMemory,
    RunMemory,
    ToolResult,
    ToolResultStatus,
    VersionUsage,
    utcnow,
)

if TYPE_CHECKING:
    from keel.records.store import Records, RecordsUnavailable

__all__ = [
    "AgentVersionRow",
    "Approval",
    "ApprovalStatus",
    "AuditEvent",
    "AuditHead",
    "AuditRow",
    "Execution",
    "ExecutionStatus",
    "Feedback",
    "OutboxMessage",
    "QueuedMemory",
    "Records",
    "RecordsUnavailable",
    "RunMemory",
    "ToolResult",
    "ToolResultStatus",
    "VersionUsage",
    "utcnow",
]

_LAZY = frozenset({"Records", "RecordsUnavailable"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from keel.records import store

        return getattr(store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
