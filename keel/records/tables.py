"""The records schema as SQLAlchemy Core tables, shared by SQLite and PostgreSQL.

The tables here describe the schema as it is at migration head; the migrations in
`keel/records/migrations/versions/` create it. Change both together.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

__all__ = [
    "EXECUTION_STATUSES",
    "APPROVAL_STATUSES",
    "TOOL_RESULT_STATUSES",
    "UTCDateTime",
    "metadata",
    "executions",
    "audit",
    "audit_heads",
    "approvals",
    "tool_results",
    "outbox",
    "memory_queue",
    "agent_versions",
    "feedback",
    "rollout_arms",
]

EXECUTION_STATUSES = ("running", "awaiting_approval", "succeeded", "failed", "terminated", "interrupted")
APPROVAL_STATUSES = ("pending", "approved", "edited", "rejected", "expired")
TOOL_RESULT_STATUSES = ("ok", "refused", "invalid", "timeout", "failed", "error")
"""`error`: rows recorded before migration 0008 (read as `failed`)."""

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend.

    Values are converted to UTC on the way in (naive values are refused) and come back aware
    in UTC. SQLite keeps them as UTC text without an offset, which sorts correctly.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: records timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _money() -> sa.Numeric[Any]:
    return sa.Numeric(18, 8, asdecimal=True)


def _json(nullable: bool = False) -> sa.JSON:
    # none_as_null: Python None is SQL NULL, not the JSON literal `null`.
    return sa.JSON(none_as_null=nullable)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


executions = sa.Table(
    "executions",
    metadata,
    sa.Column("execution_id", sa.String(64), primary_key=True),
    sa.Column("thread_id", sa.String(128), nullable=False, index=True),
    sa.Column("user_id", sa.String(128), nullable=False),
    sa.Column("role", sa.String(64), nullable=False),
    sa.Column("tenant", sa.String(128), nullable=False),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("arm", sa.String(64)),
    sa.Column("task", sa.Text, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("terminated_reason", sa.String(64)),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("ended_at", UTCDateTime),
    sa.Column("duration_ms", sa.Integer),
    sa.Column("steps", sa.Integer, nullable=False),
    sa.Column("input_tokens", sa.Integer, nullable=False),
    sa.Column("output_tokens", sa.Integer, nullable=False),
    sa.Column("total_tokens", sa.Integer, nullable=False),
    sa.Column("cost", _money(), nullable=False),
    sa.Column("cached_model_calls", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("tools_used", _json(), nullable=False),
    sa.Column("tools_failed", _json(), nullable=False),
    sa.Column("tools_refused", _json(), nullable=False, server_default=sa.text("'[]'")),
    sa.Column("succeeded", sa.Boolean),
    sa.Column("answer", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("heartbeat_at", UTCDateTime),
    sa.CheckConstraint(_in("status", EXECUTION_STATUSES), name="status"),
    sa.Index(None, "started_at"),
    sa.Index(None, "status"),
    sa.Index(None, "user_id", "started_at", "execution_id"),
    sa.Index(None, "arm", "started_at"),
)
"""`ix_executions_user_id_started_at_execution_id` serves recall's newest-first read of one user (read
backwards: no sort, `limit` rows touched) and every other lookup by user (migration 0009)."""

audit = sa.Table(
    "audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ts", UTCDateTime, nullable=False),
    sa.Column("execution_id", sa.String(64), nullable=False, index=True),
    sa.Column("thread_id", sa.String(128), nullable=False, index=True),
    sa.Column("user_id", sa.String(128), nullable=False),
    sa.Column("role", sa.String(64), nullable=False),
    sa.Column("tenant", sa.String(128), nullable=False),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("tool", sa.String(128)),
    sa.Column("tool_call_id", sa.String(128)),
    sa.Column("decision", sa.String(32)),
    sa.Column("rule", sa.Text),
    sa.Column("resource", sa.Text),
    sa.Column("args", _json(nullable=True)),
    sa.Column("status", sa.String(32)),
    sa.Column("result_digest", sa.String(128)),
    sa.Column("duration_ms", sa.Integer),
    sa.Column("detail", sa.Text),
    sa.Column("approver", sa.String(128)),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("row_hash", sa.String(64), nullable=False),
    sa.Column("chain", sa.BigInteger),
    sa.Index(None, "chain", "id"),
)
"""Append-only and hash-chained (`keel.audit_chain`; database triggers refuse UPDATE and DELETE).

`chain` is the row's chain (`keel.audit_chain.chain_of(thread_id)`), NULL for rows appended before
migration 0009 (the legacy single chain); (chain, id) is the order verification reads."""

audit_heads = sa.Table(
    "audit_heads",
    metadata,
    sa.Column("chain", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("row_count", sa.BigInteger, nullable=False),
    sa.Column("last_id", sa.Integer),
    sa.Column("head_hash", sa.String(64), nullable=False),
)
"""The sealed head of every audit chain: its row count, last row id and last `row_hash`, updated by every
append in the append's transaction. Triggers refuse DELETE (and TRUNCATE), and an UPDATE that lowers
`row_count` or moves `chain`. Chain `keel.audit_chain.LEGACY_CHAIN` seals the rows from before 0009."""

approvals = sa.Table(
    "approvals",
    metadata,
    sa.Column("approval_id", sa.String(64), primary_key=True),
    sa.Column("thread_id", sa.String(128), nullable=False),
    sa.Column("execution_id", sa.String(64), nullable=False),
    sa.Column("tool_call_id", sa.String(128), nullable=False),
    sa.Column("tool", sa.String(128), nullable=False),
    sa.Column("args", _json(), nullable=False),
    sa.Column("args_hash", sa.String(128), nullable=False),
    sa.Column("resource", sa.Text),
    sa.Column("rule", sa.Text),
    sa.Column("requester", sa.String(128), nullable=False, index=True),
    sa.Column("role", sa.String(64), nullable=False),
    sa.Column("tenant", sa.String(128), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("status", sa.String(32), nullable=False, index=True),
    sa.Column("decided_by", sa.String(128)),
    sa.Column("decided_at", UTCDateTime),
    sa.Column("decision_reason", sa.Text),
    sa.Column("edited_args", _json(nullable=True)),
    sa.UniqueConstraint("thread_id", "tool_call_id"),
    sa.CheckConstraint(_in("status", APPROVAL_STATUSES), name="status"),
)

tool_results = sa.Table(
    "tool_results",
    metadata,
    sa.Column("thread_id", sa.String(128), primary_key=True),
    sa.Column("tool_call_id", sa.String(128), primary_key=True),
    sa.Column("execution_id", sa.String(64), nullable=False),
    sa.Column("tool", sa.String(128), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("output", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("cached", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.CheckConstraint(_in("status", TOOL_RESULT_STATUSES), name="status"),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("thread_id", sa.String(128), nullable=False),
    sa.Column("tool_call_id", sa.String(128), nullable=False),
    sa.Column("user_id", sa.String(128), nullable=False, index=True),
    sa.Column("recipient", sa.Text, nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("thread_id", "tool_call_id"),
)

memory_queue = sa.Table(
    "memory_queue",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.String(128), nullable=False),
    sa.Column("tenant", sa.String(128), nullable=False),
    sa.Column("execution_id", sa.String(64), nullable=False, unique=True),
    sa.Column("payload", _json(), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("last_error", sa.Text),
    sa.Column("claimed_until", UTCDateTime),
    sa.Index(None, "user_id", "tenant"),
)
"""Run memories committed with their execution and not yet in long-term memory (`keel.memory.writer`).

A row is deleted only once its memory is written; `claimed_until` is a writer's lease or a failed row's
backoff. `payload`: the `RunMemory` fields past the identity columns."""

agent_versions = sa.Table(
    "agent_versions",
    metadata,
    sa.Column("version_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("manifest", _json(), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)
"""The agent versions processes started with (keel.app.versions): a row is inserted once, never changed;
`executions.version` names one (or, for runs recorded before migration 0011, a free label)."""


feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("execution_id", sa.String(64), nullable=False),
    sa.Column("thread_id", sa.String(128), nullable=False),
    sa.Column("user_id", sa.String(128), nullable=False),
    sa.Column("role", sa.String(64), nullable=False),
    sa.Column("score", sa.Numeric(5, 4, asdecimal=True), nullable=False),
    sa.Column("comment", sa.Text),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("execution_id", "user_id"),
    sa.CheckConstraint("score >= -1 AND score <= 1", name="score"),
    sa.Index(None, "updated_at"),
)
"""One score per (execution, user who gave it): giving it again replaces the score and comment (an upsert;
`created_at` stays, `updated_at` moves). The unique constraint's index serves every lookup by execution.
`score` is in [-1, 1] (-1/0/1, or a rating 0..1, four decimals); `comment` is redacted; `version` is the
execution's. Written by `keel.feedback.give_feedback`, with its audit row in the same transaction."""


rollout_arms = sa.Table(
    "rollout_arms",
    metadata,
    sa.Column("rollout", sa.String(128), primary_key=True),
    sa.Column("arm", sa.String(64), primary_key=True),
    sa.Column("weight", sa.Float),
    sa.Column("stopped_at", UTCDateTime),
    sa.Column("stopped_by", sa.String(128)),
    sa.Column("stop_reason", sa.Text),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("updated_by", sa.String(128), nullable=False),
)
"""What changed in a rollout since its file was written, shared by every process (migration 0014), by rollout
name (rollout.yaml's `name`, else the agent's: one records database may serve several) and arm: an arm's
weight set by an operator (`weight`, NULL: the file's) and its stop (`stopped_at`, by an operator or a guard
rail, with the reason). Written by keel.records.rollouts with an audit row in the same transaction."""
