"""`Records`: executions, audit, approvals, tool results, outbox and memory queue over SQLite or PostgreSQL.

One code path for both backends (SQLAlchemy Core, async). Writes that must be idempotent
use the dialect's `INSERT ... ON CONFLICT DO NOTHING`. On SQLite every write transaction starts
with `BEGIN IMMEDIATE`, so writers queue on the busy timeout instead of failing mid-transaction.
Inside `async with records.transaction() as conn:`, pass `conn=` to the methods that take it;
on SQLite, calling a method without it there waits for the open transaction's write lock.
Every text value written goes through `keel.textsafe` first: PostgreSQL refuses NUL, and both
profiles store the same (visibly replaced) text.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from keel import audit_chain
from keel.records import migrate
from keel.records.memory_queue import MemoryQueueStore
from keel.records.tables import APPROVAL_STATUSES, approvals, audit, executions, outbox, tool_results
from keel.records.types import (
    Approval,
    AuditEvent,
    AuditRow,
    Execution,
    OutboxMessage,
    ToolResult,
    utcnow,
)
from keel.redaction import redact_text
from keel.textsafe import safe_value

__all__ = ["Records", "RecordsUnavailable"]

_T = TypeVar("_T")
_BUSY_MS = 10_000
_PING_TIMEOUT_S = 5.0
_CONNECT_TIMEOUT_S = 5
_READ = "keel_read_only"
_EXECUTION_FIELDS = frozenset(f.name for f in fields(Execution)) - {"execution_id"}
_AUDIT_FIELDS = tuple(f.name for f in fields(AuditEvent))
_NEWEST = (executions.c.started_at.desc(), executions.c.execution_id.desc())


class RecordsUnavailable(RuntimeError):
    """The records database cannot be reached (refused, unknown host, missing file, timeout)."""


def _normalise(url: str) -> URL:
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    return parsed


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # keel emits BEGIN itself (see _sqlite_begin)
    cursor = dbapi_conn.cursor()
    # busy_timeout first: switching a new file to WAL needs its lock, which another connection (another
    # engine's migration) may hold for a moment; without the timeout that fails at once, "database is locked".
    for pragma in (f"busy_timeout={_BUSY_MS}", "journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(_READ) else "BEGIN IMMEDIATE")


def _row(cls: type[_T], row: sa.Row[Any] | None) -> _T | None:
    return None if row is None else cls(**row._mapping)


class Records(MemoryQueueStore):
    """The records database. Build with `from_url`, then `await setup()` once per process.
    The run-memory queue's methods come from `MemoryQueueStore` (keel/records/memory_queue.py)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._reader = engine.execution_options(**{_READ: True})
        self._dialect = engine.dialect.name
        url = engine.url
        if self._dialect == "sqlite":
            self.where = f"SQLite file {url.database}"
        else:
            self.where = f"PostgreSQL at {url.host or 'localhost'}:{url.port or 5432}/{url.database}"

    @classmethod
    def from_url(cls, url: str, *, pool_size: int = 5, pool_timeout_s: float = 30.0) -> Records:
        """Records over `sqlite+aiosqlite:///abs/path.sqlite` or `postgresql+psycopg://host:port/db`.

        No I/O happens here. Plain `sqlite://` and `postgresql://` URLs get the async drivers.
        `pool_size` connections at most (no overflow), waiting `pool_timeout_s` for one to be free before
        SQLAlchemy's TimeoutError, which the guards classify as a store failure.
        """
        parsed = _normalise(url)
        pool = {"pool_size": pool_size, "max_overflow": 0, "pool_timeout": pool_timeout_s}
        if parsed.get_backend_name() == "sqlite":
            memory = parsed.database in (None, "", ":memory:")
            engine = create_async_engine(parsed, **({} if memory else pool))
            sa.event.listen(engine.sync_engine, "connect", _sqlite_connect)
            sa.event.listen(engine.sync_engine, "begin", _sqlite_begin)
        else:
            engine = create_async_engine(
                parsed, pool_pre_ping=True, connect_args={"connect_timeout": _CONNECT_TIMEOUT_S}, **pool
            )
        return cls(engine)

    @property
    def engine(self) -> AsyncEngine:
        """The underlying SQLAlchemy engine."""
        return self._engine

    # -- lifecycle ---------------------------------------------------------------------------

    async def setup(self) -> None:
        """Run the migrations to head (a database already at head costs one SELECT and no Alembic import).
        Safe to repeat, and concurrently (serialised by the database)."""
        database = self._engine.url.database
        if self._dialect == "sqlite" and database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        async with migrate.process_lock():  # engines of one process take turns, as upgrades must
            with contextlib.suppress(DBAPIError):  # no alembic_version table yet: a new database
                async with self._connect(read=True) as conn:
                    if await migrate.is_at_head(conn):  # one SELECT: Alembic is not even imported
                        return
            async with self._connect() as conn:
                await migrate.upgrade(conn)

    async def ping(self) -> None:
        """Check the database answers; raise `RecordsUnavailable` naming it if not."""
        try:
            async with asyncio.timeout(_PING_TIMEOUT_S), self._connect(read=True) as conn:
                await conn.execute(sa.text("SELECT 1"))
        except TimeoutError as exc:
            msg = f"records database {self.where} did not answer within {_PING_TIMEOUT_S:g}s"
            raise RecordsUnavailable(msg) from exc

    async def close(self) -> None:
        """Close every pooled connection."""
        await self._engine.dispose()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        async with self._connect() as conn:
            yield conn

    @asynccontextmanager
    async def _connect(self, *, read: bool = False) -> AsyncIterator[AsyncConnection]:
        try:
            conn = await (self._reader if read else self._engine).connect()
        except (DBAPIError, OSError) as exc:
            raise self._unavailable(exc) from exc
        try:
            async with conn.begin():
                yield conn
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise self._unavailable(exc) from exc
            raise
        finally:
            await conn.close()

    @asynccontextmanager
    async def _join(self, conn: AsyncConnection | None) -> AsyncIterator[AsyncConnection]:
        if conn is not None:
            yield conn
        else:
            async with self._connect() as own:
                yield own

    def _unavailable(self, exc: BaseException) -> RecordsUnavailable:
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())
        return RecordsUnavailable(f"records database {self.where} is unavailable: {reason}")

    def _insert(self, table: sa.Table) -> Any:
        return (postgresql.insert if self._dialect == "postgresql" else sqlite.insert)(table)

    async def _all(self, query: sa.Select[Any]) -> list[sa.Row[Any]]:
        async with self._connect(read=True) as conn:
            return list((await conn.execute(query)).all())

    async def _one(self, query: sa.Select[Any]) -> sa.Row[Any] | None:
        async with self._connect(read=True) as conn:
            return (await conn.execute(query)).first()

    # -- executions --------------------------------------------------------------------------

    async def start_execution(self, ex: Execution) -> None:
        """Record a new execution; does nothing if its execution_id is already recorded."""
        stmt = self._insert(executions).values(_redact_error(_values(ex))).on_conflict_do_nothing()
        async with self._connect() as conn:
            await conn.execute(stmt)

    async def update_execution(self, execution_id: str, /, **fields: Any) -> None:
        """Set some columns of an execution; an unknown field name raises ValueError."""
        unknown = set(fields) - _EXECUTION_FIELDS
        if unknown:
            raise ValueError(f"unknown execution field(s): {', '.join(sorted(unknown))}")
        if not fields:
            return
        for name in ("tools_used", "tools_failed", "tools_refused"):
            if name in fields:
                fields[name] = list(fields[name])
        fields = _redact_error(fields)
        stmt = (
            sa.update(executions)
            .where(executions.c.execution_id == execution_id)
            .values(**safe_value(fields))
        )
        async with self._connect() as conn:
            await conn.execute(stmt)

    async def heartbeat(self, execution_id: str, now: datetime | None = None) -> None:
        """Renew a running execution's lease (one small UPDATE; nothing for a finished one)."""
        stmt = (
            sa.update(executions)
            .where(executions.c.execution_id == execution_id, executions.c.status == "running")
            .values(heartbeat_at=now or utcnow())
        )
        async with self._connect() as conn:
            await conn.execute(stmt)

    async def sweep_stale(self, lease_s: float, now: datetime | None = None) -> list[str]:
        """Mark `interrupted` every running execution whose lease expired; return their ids.

        A row without a heartbeat (written before the lease existed) counts from `started_at`.
        """
        cutoff = (now or utcnow()) - timedelta(seconds=lease_s)
        seen = sa.func.coalesce(executions.c.heartbeat_at, executions.c.started_at)
        stmt = (
            sa.update(executions)
            .where(executions.c.status == "running", seen < cutoff)
            .values(status="interrupted", error="the process running it stopped (lease expired)")
            .returning(executions.c.execution_id)
        )
        async with self._connect() as conn:
            return [row[0] for row in (await conn.execute(stmt)).all()]

    async def get_execution(self, execution_id: str) -> Execution | None:
        """One execution by id."""
        query = sa.select(executions).where(executions.c.execution_id == execution_id)
        return _row(Execution, await self._one(query))

    async def latest_execution(self, thread_id: str) -> Execution | None:
        """The most recently started execution of a thread."""
        query = sa.select(executions).where(executions.c.thread_id == thread_id).order_by(*_NEWEST).limit(1)
        return _row(Execution, await self._one(query))

    async def list_executions(
        self, *, user_id: str | None = None, status: str | None = None, limit: int = 20
    ) -> list[Execution]:
        """Executions, newest first, optionally of one user and/or in one status."""
        query = sa.select(executions).order_by(*_NEWEST)
        if user_id is not None:
            query = query.where(executions.c.user_id == user_id)
        if status is not None:
            query = query.where(executions.c.status == status)
        return [Execution(**r._mapping) for r in await self._all(query.limit(limit))]

    # -- audit (append-only) -----------------------------------------------------------------

    async def append_audit(self, ev: AuditEvent, *, conn: AsyncConnection | None = None) -> int:
        """Append one audit entry, chained to the last one, and return its id; with `conn`, inside it.

        Appends are serialised so the chain stays linear: PostgreSQL takes a transaction-scoped
        advisory lock before reading the last hash; SQLite's `BEGIN IMMEDIATE` already holds the write lock.
        """
        values = safe_value(audit_chain.normalise({name: getattr(ev, name) for name in _AUDIT_FIELDS}))
        last = sa.select(audit.c.row_hash).order_by(audit.c.id.desc()).limit(1)
        async with self._join(conn) as c:
            if self._dialect == "postgresql":
                lock = sa.text("SELECT pg_advisory_xact_lock(:key)")
                await c.execute(lock, {"key": audit_chain.AUDIT_LOCK_KEY})
            prev = (await c.execute(last)).scalar() or audit_chain.GENESIS
            values.update(prev_hash=prev, row_hash=audit_chain.row_hash(prev, values))
            result = await c.execute(sa.insert(audit).values(values))
        return int(result.inserted_primary_key[0])

    async def audit_pages(self, *, page_size: int = 1000) -> AsyncIterator[list[AuditRow]]:
        """Every audit row in append (`id`) order, a page at a time (for `keel audit verify`)."""
        after = 0
        while True:
            query = sa.select(audit).where(audit.c.id > after).order_by(audit.c.id).limit(page_size)
            rows = [AuditRow(**r._mapping) for r in await self._all(query)]
            if not rows:
                return
            yield rows
            after = rows[-1].id

    async def audit_for(
        self, *, thread_id: str | None = None, execution_id: str | None = None, limit: int = 200
    ) -> list[AuditRow]:
        """The last `limit` entries of a thread and/or execution, oldest first."""
        if thread_id is None and execution_id is None:
            raise ValueError("audit_for needs thread_id or execution_id")
        query = sa.select(audit)
        if thread_id is not None:
            query = query.where(audit.c.thread_id == thread_id)
        if execution_id is not None:
            query = query.where(audit.c.execution_id == execution_id)
        return await self._last(query, limit)

    async def tail_audit(self, limit: int = 20) -> list[AuditRow]:
        """The last `limit` audit entries, oldest first."""
        return await self._last(sa.select(audit), limit)

    async def _last(self, query: sa.Select[Any], limit: int) -> list[AuditRow]:
        rows = await self._all(query.order_by(audit.c.id.desc()).limit(limit))
        return [AuditRow(**r._mapping) for r in reversed(rows)]

    # -- approvals ---------------------------------------------------------------------------

    async def create_approval(self, a: Approval) -> Approval:
        """Store `a` unless (thread_id, tool_call_id) already has one; return the stored row either way."""
        stmt = self._insert(approvals).values(_values(a)).on_conflict_do_nothing()
        query = sa.select(approvals).where(
            approvals.c.thread_id == a.thread_id, approvals.c.tool_call_id == a.tool_call_id
        )
        async with self._connect() as conn:
            await conn.execute(stmt)
            row = (await conn.execute(query)).one()
        return Approval(**row._mapping)

    async def get_approval(self, approval_id: str) -> Approval | None:
        """One approval by id."""
        query = sa.select(approvals).where(approvals.c.approval_id == approval_id)
        return _row(Approval, await self._one(query))

    async def approval_for_call(self, thread_id: str, tool_call_id: str) -> Approval | None:
        """The approval of one tool call, if one was requested."""
        query = sa.select(approvals).where(
            approvals.c.thread_id == thread_id, approvals.c.tool_call_id == tool_call_id
        )
        return _row(Approval, await self._one(query))

    async def list_approvals(
        self, *, status: str | None = "pending", requester: str | None = None, limit: int = 100
    ) -> list[Approval]:
        """Approvals, oldest first; pending ones by default (`status=None` for all)."""
        query = sa.select(approvals).order_by(approvals.c.created_at, approvals.c.approval_id)
        if status is not None:
            query = query.where(approvals.c.status == status)
        if requester is not None:
            query = query.where(approvals.c.requester == requester)
        return [Approval(**r._mapping) for r in await self._all(query.limit(limit))]

    async def decide_approval(
        self,
        approval_id: str,
        *,
        status: str,
        decided_by: str,
        reason: str | None = None,
        edited_args: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> bool:
        """Move a pending approval to `status`; True only for the caller that did.

        A decision on an approval already decided loses (False). So does `approved`/`edited`
        once `expires_at` has passed: an expired request can only be rejected or expired.
        """
        if status not in APPROVAL_STATUSES or status == "pending":
            raise ValueError(f"not a decision: {status!r}")
        now = now or utcnow()
        stmt = (
            sa.update(approvals)
            .where(approvals.c.approval_id == approval_id, approvals.c.status == "pending")
            .values(
                status=status,
                decided_by=decided_by,
                decided_at=now,
                decision_reason=safe_value(reason),
                edited_args=safe_value(dict(edited_args)) if edited_args is not None else None,
            )
        )
        if status in ("approved", "edited"):
            stmt = stmt.where(approvals.c.expires_at > now)
        async with self._connect() as conn:
            result = await conn.execute(stmt)
        return result.rowcount == 1

    # -- tool results ------------------------------------------------------------------------

    async def get_tool_result(self, thread_id: str, tool_call_id: str) -> ToolResult | None:
        """The recorded result of a tool call, if it already ran."""
        query = sa.select(tool_results).where(
            tool_results.c.thread_id == thread_id, tool_results.c.tool_call_id == tool_call_id
        )
        return _row(ToolResult, await self._one(query))

    async def save_tool_result(self, r: ToolResult, *, conn: AsyncConnection | None = None) -> bool:
        """Record a tool call's result; False (and no change) if it was already recorded."""
        stmt = (
            self._insert(tool_results)
            .values(_values(r))
            .on_conflict_do_nothing()
            .execution_options(preserve_rowcount=True)  # psycopg's async cursor forgets it otherwise
        )
        async with self._join(conn) as c:
            result = await c.execute(stmt)
        return result.rowcount == 1

    # -- outbox ------------------------------------------------------------------------------

    async def add_outbox(self, m: OutboxMessage, *, conn: AsyncConnection) -> None:
        """Queue an email in the caller's transaction; a second message for the same call is ignored."""
        values = _values(m)
        values.pop("id")
        await conn.execute(self._insert(outbox).values(values).on_conflict_do_nothing())

    async def list_outbox(self, *, user_id: str | None = None) -> list[OutboxMessage]:
        """Queued emails in the order they were added, optionally of one user."""
        query = sa.select(outbox).order_by(outbox.c.id)
        if user_id is not None:
            query = query.where(outbox.c.user_id == user_id)
        return [OutboxMessage(**r._mapping) for r in await self._all(query)]


def _redact_error(fields: dict[str, Any]) -> dict[str, Any]:
    """The `error` column holds exception text (a provider's error body, a path): it passes the redactor
    here, where every writer of an execution record goes through."""
    if fields.get("error"):
        fields = {**fields, "error": redact_text(str(fields["error"]))}
    return fields


def _values(obj: Any) -> dict[str, Any]:
    values = {f.name: safe_value(getattr(obj, f.name)) for f in fields(obj)}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
