"""`Records`: executions, audit, approvals, tool results, outbox, memory queue and feedback over SQLite or
PostgreSQL.

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
import functools
from collections.abc import AsyncIterator, Mapping, Sequence
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
from keel.records.ab import ABStore
from keel.records.feedback import FeedbackStore
from keel.records.idle_ping import ping_when_idle
from keel.records.memory_queue import MemoryQueueStore
from keel.records.rollouts import RolloutStore
from keel.records.tables import (
    APPROVAL_STATUSES,
    approvals,
    audit,
    audit_heads,
    executions,
    outbox,
    tool_results,
)
from keel.records.types import (
    Approval,
    AuditEvent,
    AuditHead,
    AuditRow,
    Execution,
    OutboxMessage,
    ToolResult,
    utcnow,
)
from keel.records.versions import VersionStore
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
_KNOWN_HEADS_MAX = 100_000


_AUDIT_INSERT = sa.insert(audit).returning(audit.c.id, sort_by_parameter_order=True)


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


class Records(MemoryQueueStore, VersionStore, FeedbackStore, RolloutStore, ABStore):
    """The records database. Build with `from_url`, then `await setup()` once per process.
    The run-memory queue's methods come from `MemoryQueueStore` (keel/records/memory_queue.py), the agent
    versions' from `VersionStore` (keel/records/versions.py), feedback's from `FeedbackStore`
    (keel/records/feedback.py), the A/B report's read from `ABStore` (keel/records/ab.py)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name
        # A read of one statement needs no transaction: on PostgreSQL it runs in autocommit (no BEGIN and
        # COMMIT round trips around it); SQLite reads take a plain (deferred) BEGIN, never the write lock.
        autocommit = {"isolation_level": "AUTOCOMMIT"} if self._dialect == "postgresql" else {}
        self._reader = engine.execution_options(**{_READ: True}, **autocommit)
        url = engine.url
        if self._dialect == "sqlite":
            self.where = f"SQLite file {url.database}"
        else:
            self.where = f"PostgreSQL at {url.host or 'localhost'}:{url.port or 5432}/{url.database}"
        self._known_heads: set[int] = set()
        """Audit chains this process saw a head of (heads are never deleted): a hint, see `_append_pg`."""

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
            engine = create_async_engine(parsed, connect_args={"connect_timeout": _CONNECT_TIMEOUT_S}, **pool)
            ping_when_idle(engine)  # not pool_pre_ping: no ping on a connection used a moment ago
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
    async def _connect(self, *, read: bool = False, snapshot: bool = False) -> AsyncIterator[AsyncConnection]:
        try:
            conn = await (self._reader if read else self._engine).connect()
            if snapshot and self._dialect == "postgresql":
                await conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
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

    async def start_execution(self, ex: Execution, *, conn: AsyncConnection | None = None) -> None:
        """Record a new execution; does nothing if its execution_id is already recorded."""
        stmt = self._insert(executions).values(_redact_error(_values(ex))).on_conflict_do_nothing()
        async with self._join(conn) as c:
            await c.execute(stmt)

    async def update_execution(
        self, execution_id: str, /, *, conn: AsyncConnection | None = None, **fields: Any
    ) -> None:
        """Set some columns of an execution (inside `conn` when given); an unknown field name raises
        ValueError."""
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
        async with self._join(conn) as c:
            await c.execute(stmt)

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
        self,
        *,
        user_id: str | None = None,
        status: str | None = None,
        limit: int = 20,
        conn: AsyncConnection | None = None,
    ) -> list[Execution]:
        """Executions, newest first, optionally of one user and/or in one status (inside `conn` when
        given)."""
        query = sa.select(executions).order_by(*_NEWEST)
        if user_id is not None:
            query = query.where(executions.c.user_id == user_id)
        if status is not None:
            query = query.where(executions.c.status == status)
        query = query.limit(limit)
        rows = list((await conn.execute(query)).all()) if conn is not None else await self._all(query)
        return [Execution(**r._mapping) for r in rows]

    # -- audit (append-only) -----------------------------------------------------------------

    async def append_audit(self, ev: AuditEvent, *, conn: AsyncConnection | None = None) -> int:
        """Append one audit entry to its thread's chain and return its id; with `conn`, inside it."""
        (row_id,) = await self.append_audit_many([ev], conn=conn)
        return row_id

    async def append_audit_many(
        self, events: Sequence[AuditEvent], *, conn: AsyncConnection | None = None
    ) -> list[int]:
        """Append entries, chained in the given order within their threads' chains; return their ids in
        that order. With `conn`, inside the caller's transaction; otherwise in one of their own.

        Each thread's entries are one statement: on PostgreSQL one `WITH` statement locks the chain's head
        row (`FOR UPDATE`), hashes the rows from it, inserts them and moves the head; a thread's first
        append creates its head first. Appends of different threads share no lock; appends of one thread
        wait for each other's transactions. On SQLite `BEGIN IMMEDIATE` already serialises writers.
        Threads are appended in chain order, so two calls spanning the same threads cannot deadlock.
        """
        if not events:
            return []
        by_chain: dict[int, list[tuple[int, dict[str, Any]]]] = {}
        for index, ev in enumerate(events):
            values = safe_value(audit_chain.normalise({name: getattr(ev, name) for name in _AUDIT_FIELDS}))
            by_chain.setdefault(audit_chain.chain_of(values["thread_id"]), []).append((index, values))
        ids: list[int] = [0] * len(events)
        async with self._join(conn) as c:
            for chain in sorted(by_chain):
                batch = by_chain[chain]
                append = self._append_pg if self._dialect == "postgresql" else self._append_sqlite
                for (index, _), row_id in zip(
                    batch, await append(c, chain, [v for _, v in batch]), strict=True
                ):
                    ids[index] = row_id
        return ids

    async def _append_pg(self, c: AsyncConnection, chain: int, rows: list[dict[str, Any]]) -> list[int]:
        """One statement for a chain whose head this process has seen; otherwise its head is created first
        if missing (a thread's first append: two statements). The hint may be stale (the transaction that
        created the head rolled back): then the statement appends nothing and the head is created."""
        statement, params = _pg_append(len(rows)), _pg_append_params(chain, rows)
        if chain in self._known_heads and (ids := list((await c.execute(statement, params)).scalars())):
            return ids
        head = {"chain": chain, "row_count": 0, "last_id": None, "head_hash": audit_chain.GENESIS}
        await c.execute(postgresql.insert(audit_heads).values(head).on_conflict_do_nothing())
        if not (ids := list((await c.execute(statement, params)).scalars())):
            raise RuntimeError(f"audit chain {chain}: its head is missing after it was created")
        if len(self._known_heads) >= _KNOWN_HEADS_MAX:
            self._known_heads.clear()
        self._known_heads.add(chain)
        return ids

    async def _append_sqlite(self, c: AsyncConnection, chain: int, rows: list[dict[str, Any]]) -> list[int]:
        query = sa.select(audit_heads.c.head_hash).where(audit_heads.c.chain == chain)
        prev = (await c.execute(query)).scalar() or audit_chain.GENESIS
        chained = []
        for values in rows:
            digest = audit_chain.row_hash(prev, values)
            chained.append({**values, "chain": chain, "prev_hash": prev, "row_hash": digest})
            prev = digest
        # one cached statement with a parameter set per row (SQLAlchemy's insertmanyvalues: one INSERT ...
        # VALUES (...), (...) RETURNING), not a new VALUES clause compiled on every append
        result = await c.execute(_AUDIT_INSERT, chained)
        ids = list(result.scalars())
        head = {"chain": chain, "row_count": len(ids), "last_id": ids[-1], "head_hash": prev}
        upsert = sqlite.insert(audit_heads).values(head)
        upsert = upsert.on_conflict_do_update(
            index_elements=[audit_heads.c.chain],
            set_={
                "row_count": audit_heads.c.row_count + len(ids),
                "last_id": upsert.excluded.last_id,
                "head_hash": upsert.excluded.head_hash,
            },
        )
        await c.execute(upsert)
        return ids

    async def verify_audit(self, *, page_size: int = 1000) -> audit_chain.ChainReport:
        """Verify every audit chain against its sealed head (`keel audit verify`), from one snapshot:
        PostgreSQL reads in one REPEATABLE READ transaction, SQLite in one read transaction, so appends
        running meanwhile are either wholly seen or not at all."""
        async with self._connect(read=True, snapshot=True) as conn:
            return await audit_chain.verify_chains(
                _audit_pages(conn, page_size), _head_pages(conn, page_size)
            )

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

    async def get_tool_result(
        self, thread_id: str, tool_call_id: str, *, conn: AsyncConnection | None = None
    ) -> ToolResult | None:
        """The recorded result of a tool call, if it already ran (inside `conn` when given)."""
        query = sa.select(tool_results).where(
            tool_results.c.thread_id == thread_id, tool_results.c.tool_call_id == tool_call_id
        )
        row = (await conn.execute(query)).first() if conn is not None else await self._one(query)
        return _row(ToolResult, row)

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


async def _audit_pages(conn: AsyncConnection, page_size: int) -> AsyncIterator[list[AuditRow]]:
    """Every audit row in verification order: the legacy rows (chain NULL) by id, then by (chain, id)."""
    after = 0
    while rows := await _rows(conn, audit.c.chain.is_(None), audit.c.id > after, limit=page_size):
        yield rows
        after = rows[-1].id
    at = (-1, 0)
    while rows := await _rows(conn, sa.tuple_(audit.c.chain, audit.c.id) > at, limit=page_size):
        yield rows
        at = (rows[-1].chain, rows[-1].id)


async def _rows(conn: AsyncConnection, *where: Any, limit: int) -> list[AuditRow]:
    query = sa.select(audit).where(*where).order_by(audit.c.chain, audit.c.id).limit(limit)
    return [AuditRow(**r._mapping) for r in await conn.execute(query)]


async def _head_pages(conn: AsyncConnection, page_size: int) -> AsyncIterator[list[AuditHead]]:
    """Every chain's head, in chain order."""
    after: int | None = None
    while True:
        query = sa.select(audit_heads).order_by(audit_heads.c.chain).limit(page_size)
        if after is not None:
            query = query.where(audit_heads.c.chain > after)
        heads = [AuditHead(**r._mapping) for r in await conn.execute(query)]
        if not heads:
            return
        yield heads
        after = heads[-1].chain


def _pg_append_params(chain: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The parameters of `_pg_append(len(rows))`: the chain, and each row's fields and canonical bytes."""
    params: dict[str, Any] = {"chain_key": chain}
    for n, values in enumerate(rows, 1):
        params[f"canon_{n}"] = audit_chain.canonical(values)
        params.update((f"{name}_{n}", values[name]) for name in _AUDIT_FIELDS)
    return params


@functools.lru_cache(maxsize=32)
def _pg_append(count: int) -> sa.Select[Any]:
    """One PostgreSQL statement appending `count` rows to a chain behind its head; selects the new ids
    (none when the chain has no head yet). Built once per row count, so SQLAlchemy compiles it once.

    `head` locks the chain's head row (`FOR UPDATE` sees the latest committed head); `hashes` chains the
    rows from it with `sha256(prev_hash || canonical)` (the canonical bytes come from Python, so the hash
    is `audit_chain.row_hash`'s); `added` inserts them in order, drawing their ids under the lock; `moved`
    updates the head.
    """
    names = list(_AUDIT_FIELDS)
    chain = sa.bindparam("chain_key", type_=sa.BigInteger)
    # A UNION ALL of one SELECT of bound parameters per row (a VALUES construct is never cached).
    selects = [
        sa.select(
            sa.literal_column(str(n), sa.Integer).label("n"),
            sa.bindparam(f"canon_{n}", type_=sa.LargeBinary).label("canon"),
            *(sa.bindparam(f"{name}_{n}", type_=audit.c[name].type).label(name) for name in names),
        )
        for n in range(1, count + 1)
    ]
    given = (selects[0] if count == 1 else sa.union_all(*selects)).cte("given")
    head = (
        sa.select(audit_heads.c.chain, audit_heads.c.head_hash)
        .where(audit_heads.c.chain == chain)
        .with_for_update()
        .cte("head")
    )
    start = sa.select(
        sa.literal(0, sa.Integer).label("n"),
        sa.cast(sa.null(), sa.Text).label("prev"),
        sa.cast(head.c.head_hash, sa.Text).label("hash"),
    ).cte("hashes", recursive=True)
    link = sa.func.convert_to(start.c.hash, "UTF8").op("||")(given.c.canon)
    step = sa.select(
        sa.cast(given.c.n, sa.Integer),
        start.c.hash,
        sa.func.encode(sa.func.sha256(link), "hex"),
    ).where(given.c.n == start.c.n + 1)
    hashes = start.union_all(step)
    source = (
        sa.select(
            *(sa.cast(given.c[name], audit.c[name].type) for name in names),
            chain,
            hashes.c.prev,
            hashes.c.hash,
        )
        .select_from(hashes.join(given, given.c.n == hashes.c.n))
        .order_by(hashes.c.n)
    )
    added = (
        sa.insert(audit)
        .from_select([*names, "chain", "prev_hash", "row_hash"], source)
        .returning(audit.c.id)
        .cte("added")
    )
    moved = (
        sa.update(audit_heads)
        .where(audit_heads.c.chain == head.c.chain)
        .values(
            row_count=audit_heads.c.row_count + count,
            last_id=sa.select(sa.func.max(added.c.id)).scalar_subquery(),
            head_hash=sa.select(hashes.c.hash).order_by(hashes.c.n.desc()).limit(1).scalar_subquery(),
        )
        .cte("moved")
    )
    return sa.select(added.c.id).add_cte(moved).order_by(added.c.id)
