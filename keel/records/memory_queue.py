"""The run-memory queue (`memory_queue`): the part of `Records` that queues run memories durably.

- `enqueue_memory` inserts at most one row per execution (`ON CONFLICT (execution_id) DO NOTHING`), inside
  the caller's transaction when `conn` is given: the memory is committed with the execution or not at all.
- `claim_memory` hands a row to one claimer until its lease (`claimed_until`) passes: on PostgreSQL the batch
  is picked `FOR UPDATE SKIP LOCKED` (concurrent claimers take different rows and never wait on each other);
  on SQLite the statement runs under `BEGIN IMMEDIATE`, one writer at a time. A claimer that dies leaves its
  rows claimable again once the lease has passed.
- A row leaves the queue only through `memory_written`, called once its memory is in long-term memory.
- `recall_reads` reads a user's newest executions and queued memories in one read transaction (recall's one
  records read), both through indexes: (user_id, started_at, execution_id) and (user_id, tenant).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import fields
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from keel.records.tables import executions, memory_queue
from keel.records.types import Execution, QueuedMemory, RunMemory, utcnow
from keel.redaction import redact_text
from keel.textsafe import safe_value

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["MemoryQueueStore", "recent_executions_query"]

_COLUMNS = frozenset(c.name for c in memory_queue.columns)
_PAYLOAD = tuple(f.name for f in fields(RunMemory) if f.name not in _COLUMNS)
_NEWEST = (executions.c.started_at.desc(), executions.c.execution_id.desc())
_MAX_ERROR_CHARS = 2000


class MemoryQueueStore:
    """`Records`' memory-queue methods (a base class of `Records`, which provides the connections)."""

    _dialect: str

    if TYPE_CHECKING:

        def _connect(self, *, read: bool = False) -> AbstractAsyncContextManager[AsyncConnection]: ...
        def _join(self, conn: AsyncConnection | None) -> AbstractAsyncContextManager[AsyncConnection]: ...
        def _insert(self, table: sa.Table) -> Any: ...

    async def enqueue_memory(self, item: RunMemory, *, conn: AsyncConnection | None = None) -> bool:
        """Queue a run's memory (the task redacted, as the execution record keeps it); with `conn`, inside
        that transaction. False (and no change) when the execution already has one queued."""
        payload: dict[str, Any] = {name: getattr(item, name) for name in _PAYLOAD}
        payload.update(
            task=redact_text(item.task),
            tools_used=list(item.tools_used),
            tools_failed=list(item.tools_failed),
        )
        values = {
            "user_id": item.user_id,
            "tenant": item.tenant,
            "execution_id": item.execution_id,
            "payload": safe_value(payload),
            "created_at": utcnow(),
        }
        stmt = (
            self._insert(memory_queue)
            .values(values)
            .on_conflict_do_nothing(index_elements=[memory_queue.c.execution_id])
            .execution_options(preserve_rowcount=True)
        )
        async with self._join(conn) as c:
            result = await c.execute(stmt)
        return result.rowcount == 1

    async def claim_memory(
        self, *, limit: int, lease_s: float, now: datetime | None = None
    ) -> list[QueuedMemory]:
        """Claim up to `limit` unclaimed (or lease-expired) rows, oldest first, for `lease_s` seconds."""
        now = now or utcnow()
        q = memory_queue.c
        pick = (
            sa.select(q.id)
            .where(sa.or_(q.claimed_until.is_(None), q.claimed_until <= now))
            .order_by(q.id)
            .limit(limit)
        )
        if self._dialect == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        stmt = (
            sa.update(memory_queue)
            .where(q.id.in_(pick))
            .values(claimed_until=now + timedelta(seconds=lease_s))
            .returning(*memory_queue.columns)
        )
        async with self._connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return sorted((_queued(r) for r in rows), key=lambda m: m.id)

    async def memory_written(self, ids: Sequence[int]) -> None:
        """Delete the rows whose memories are now in long-term memory."""
        if not ids:
            return
        async with self._connect() as conn:
            await conn.execute(sa.delete(memory_queue).where(memory_queue.c.id.in_(list(ids))))

    async def memory_failed(self, row_id: int, error: str, *, retry_at: datetime) -> None:
        """Count a failed write of a row, keep its error, and hold it back until `retry_at`."""
        stmt = (
            sa.update(memory_queue)
            .where(memory_queue.c.id == row_id)
            .values(
                attempts=memory_queue.c.attempts + 1,
                last_error=safe_value(redact_text(error)[:_MAX_ERROR_CHARS]),
                claimed_until=retry_at,
            )
        )
        async with self._connect() as conn:
            await conn.execute(stmt)

    async def queued_memory(
        self, *, user_id: str | None = None, tenant: str | None = None, limit: int = 1000
    ) -> list[QueuedMemory]:
        """Queued run memories, oldest first, optionally of one user (and tenant)."""
        query = _of(sa.select(memory_queue), user_id, tenant).order_by(memory_queue.c.id).limit(limit)
        async with self._connect(read=True) as conn:
            return [_queued(r) for r in (await conn.execute(query)).all()]

    async def queued_memory_count(self) -> int:
        """How many run memories wait in the queue (every process's)."""
        async with self._connect(read=True) as conn:
            count = (await conn.execute(sa.select(sa.func.count()).select_from(memory_queue))).scalar()
        return int(count or 0)

    async def recall_reads(
        self,
        user_id: str,
        tenant: str,
        *,
        limit: int,
        pending: int = 100,
        conn: AsyncConnection | None = None,
    ) -> tuple[list[Execution], list[QueuedMemory]]:
        """Recall's one read: the user's `limit` newest executions (any tenant, newest first) and up to
        `pending` of the user's run memories still queued in `tenant` (newest first; `pending=0`: not read),
        in one transaction (the caller's `conn` when given)."""
        recent = recent_executions_query(user_id, limit=limit)
        queued = (
            _of(sa.select(memory_queue), user_id, tenant).order_by(memory_queue.c.id.desc()).limit(pending)
        )
        if conn is not None:
            found = [Execution(**r._mapping) for r in (await conn.execute(recent)).all()]
            waiting = [_queued(r) for r in (await conn.execute(queued)).all()] if pending > 0 else []
            return found, waiting
        async with self._connect(read=True) as own:
            return await self.recall_reads(user_id, tenant, limit=limit, pending=pending, conn=own)


def recent_executions_query(user_id: str, *, limit: int) -> sa.Select[Any]:
    """A user's `limit` newest executions: read backwards off (user_id, started_at, execution_id)."""
    return sa.select(executions).where(executions.c.user_id == user_id).order_by(*_NEWEST).limit(limit)


def _of(query: sa.Select[Any], user_id: str | None, tenant: str | None) -> sa.Select[Any]:
    if user_id is not None:
        query = query.where(memory_queue.c.user_id == user_id)
    if tenant is not None:
        query = query.where(memory_queue.c.tenant == tenant)
    return query


def _queued(row: sa.Row[Any]) -> QueuedMemory:
    values = dict(row._mapping)
    payload = values.pop("payload") or {}
    return QueuedMemory(**values, **{k: v for k, v in payload.items() if k in _PAYLOAD})
