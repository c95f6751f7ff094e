"""Row value objects of the records database: one frozen dataclass per table row.

Field names equal column names. Timestamps are timezone-aware UTC; money is `Decimal`.
The audit log has two types: `AuditEvent` is what callers append (no id yet) and `AuditRow`
is an `AuditEvent` as stored, with its database `id`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

__all__ = [
    "ApprovalStatus",
    "ExecutionStatus",
    "ToolResultStatus",
    "Execution",
    "AuditEvent",
    "AuditRow",
    "AuditHead",
    "Approval",
    "ToolResult",
    "OutboxMessage",
    "RunMemory",
    "QueuedMemory",
    "AgentVersionRow",
    "VersionUsage",
    "utcnow",
]

ExecutionStatus = Literal["running", "awaiting_approval", "succeeded", "failed", "terminated", "interrupted"]
ApprovalStatus = Literal["pending", "approved", "edited", "rejected", "expired"]
ToolResultStatus = Literal["ok", "refused", "invalid", "timeout", "failed", "error"]
"""keel.tool_status.ToolStatus as recorded (not `replayed`); `error`: rows written before migration 0008."""


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


class _Row:
    __slots__ = ()

    def as_dict(self) -> dict[str, Any]:
        """The row as JSON-friendly data: datetimes in ISO 8601, Decimal as str, tuples as lists."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]


@dataclass(frozen=True, kw_only=True, slots=True)
class Execution(_Row):
    """One run of the agent: who ran what, how it ended, and what it used."""

    execution_id: str
    thread_id: str
    user_id: str
    role: str
    tenant: str
    version: str
    task: str
    arm: str | None = None
    """The rollout arm the run was assigned to (keel.rollout); None when no rollout was in force."""
    status: ExecutionStatus = "running"
    terminated_reason: str | None = None
    started_at: datetime = field(default_factory=utcnow)
    ended_at: datetime | None = None
    duration_ms: int | None = None
    steps: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cost: Decimal = Decimal("0")
    cached_model_calls: int = 0
    """Model answers served from the response cache (keel.hotstate.model_cache): no call, no cost."""
    tools_used: tuple[str, ...] = ()
    """Names of the tools called, in order."""
    tools_failed: tuple[str, ...] = ()
    """Names of the tools that ran and did not end `ok` (error or timeout)."""
    tools_refused: tuple[str, ...] = ()
    """Names of the tools whose calls were refused: invalid, denied by policy, rejected or expired."""
    succeeded: bool | None = None
    answer: str | None = None
    error: str | None = None
    heartbeat_at: datetime | None = None
    """Renewed while the run's process lives; an expired lease means the process died (`interrupted`)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "tools_used", tuple(self.tools_used))
        object.__setattr__(self, "tools_failed", tuple(self.tools_failed))
        object.__setattr__(self, "tools_refused", tuple(self.tools_refused))
        cost = self.cost
        object.__setattr__(self, "cost", Decimal(str(cost)) if isinstance(cost, float) else Decimal(cost))


@dataclass(frozen=True, kw_only=True, slots=True)
class AuditEvent(_Row):
    """One audit entry to append: a tool call, a permission decision, an approval request or decision."""

    execution_id: str
    thread_id: str
    user_id: str
    role: str
    tenant: str
    event: str
    """`tool_call`, `permission`, `approval_requested`, `approval_decision`, …"""
    ts: datetime = field(default_factory=utcnow)
    tool: str | None = None
    tool_call_id: str | None = None
    decision: str | None = None
    """allow / deny / ask / approve / edit / reject / expired."""
    rule: str | None = None
    resource: str | None = None
    args: dict[str, Any] | None = None
    """Tool arguments, already redacted by the caller."""
    status: str | None = None
    """ok / error / timeout / denied / rejected / invalid / replayed."""
    result_digest: str | None = None
    duration_ms: int | None = None
    detail: str | None = None
    approver: str | None = None
    """Who decided (or tried to decide) an approval: `approval_decision` and `approval_refused` rows."""


@dataclass(frozen=True, kw_only=True, slots=True)
class AuditRow(AuditEvent):
    """An audit entry as stored, with its append-order `id` and its links in the hash chain."""

    id: int
    prev_hash: str = ""
    """`row_hash` of the row appended before this one (`keel.audit_chain.GENESIS` for the first)."""
    row_hash: str = ""
    """sha256 over `prev_hash` and this row's fields (see `keel.audit_chain`)."""
    chain: int | None = None
    """The chain the row is linked in (`keel.audit_chain.chain_of(thread_id)`); None for a row appended
    before migration 0009 (the legacy single chain, in `id` order)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class AuditHead(_Row):
    """The sealed head of one audit chain, as stored in `audit_heads`."""

    chain: int
    row_count: int
    last_id: int | None
    """Id of the chain's last row (None while the chain is empty)."""
    head_hash: str
    """`row_hash` of the chain's last row (`keel.audit_chain.GENESIS` while it is empty)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Approval(_Row):
    """A request for a human decision on one tool call, bound to the hash of the args shown."""

    thread_id: str
    execution_id: str
    tool_call_id: str
    tool: str
    args: dict[str, Any]
    """Arguments as shown to the approver (redacted)."""
    args_hash: str
    requester: str
    """The user_id whose run asked."""
    role: str
    tenant: str
    expires_at: datetime
    approval_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    resource: str | None = None
    rule: str | None = None
    reason: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    status: ApprovalStatus = "pending"
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_reason: str | None = None
    edited_args: dict[str, Any] | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolResult(_Row):
    """The recorded outcome of one tool call, keyed by (thread_id, tool_call_id) for idempotency."""

    thread_id: str
    tool_call_id: str
    execution_id: str
    tool: str
    status: ToolResultStatus
    output: str
    created_at: datetime = field(default_factory=utcnow)
    cached: bool = False
    """Served from the tool result cache (keel.hotstate.tool_cache): the tool did not run, nothing charged."""


@dataclass(frozen=True, kw_only=True, slots=True)
class OutboxMessage(_Row):
    """An email queued by `send_email`; `id` is set once stored."""

    thread_id: str
    tool_call_id: str
    user_id: str
    recipient: str
    subject: str
    body: str
    created_at: datetime = field(default_factory=utcnow)
    id: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class RunMemory(_Row):
    """A run's long-term memory to write: what `keel.memory.run_memory.run_memory_text` is built from.

    Queued in `memory_queue` by finalize (one per execution) and written to Chroma by the memory writer."""

    user_id: str
    tenant: str
    execution_id: str
    task: str
    tools_used: tuple[str, ...] = ()
    tools_failed: tuple[str, ...] = ()
    status: str = "succeeded"
    reason: str | None = None
    answer: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "tools_used", tuple(self.tools_used))
        object.__setattr__(self, "tools_failed", tuple(self.tools_failed))


@dataclass(frozen=True, kw_only=True, slots=True)
class QueuedMemory(RunMemory):
    """A `RunMemory` as queued: its row `id`, failed attempts so far, the claim of the writer holding it."""

    id: int
    created_at: datetime = field(default_factory=utcnow)
    attempts: int = 0
    last_error: str | None = None
    claimed_until: datetime | None = None
    """A writer's lease (or a failed row's backoff): nobody else claims the row before it passes."""


@dataclass(frozen=True, kw_only=True, slots=True)
class AgentVersionRow(_Row):
    """An agent version as stored in `agent_versions`: its id (`<name>@<hash>`), name and manifest."""

    version_id: str
    name: str
    manifest: dict[str, Any]
    created_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, kw_only=True, slots=True)
class VersionUsage(_Row):
    """A version seen in the records: in `agent_versions`, on executions, or both."""

    version_id: str
    name: str | None
    """None: only executions name it (a free label, or a version recorded before migration 0011)."""
    executions: int
    first_seen: datetime
    """The earlier of its row's creation and its first execution."""
    last_seen: datetime
    """Its latest execution's start (its row's creation when none ran)."""
    recorded: bool
    """Whether its manifest is stored (`keel versions show` can show it)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Feedback(_Row):
    """A user's score (in [-1, 1]) and optional comment on one execution; one per (execution, user), the
    latest given (`created_at`: first given, `updated_at`: last changed). `version`: the execution's."""

    execution_id: str
    thread_id: str
    user_id: str
    role: str
    score: Decimal
    comment: str | None = None
    version: str
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    id: int | None = None

    def __post_init__(self) -> None:
        score = self.score
        object.__setattr__(self, "score", Decimal(str(score)) if isinstance(score, float) else Decimal(score))
