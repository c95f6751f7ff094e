"""The audit log's hash chains: how a row is hashed, how chains are sealed, and how the log is verified.

Every thread's rows form one chain (``chain_of(thread_id)``, a 63-bit hash of the thread id): each row
stores ``prev_hash`` (the ``row_hash`` of the chain's previous row; ``GENESIS`` for its first) and
``row_hash = sha256(prev_hash + canonical JSON of the row's fields)``. Appends to one chain are serialised
on that chain's head row only, so runs of different threads never wait for each other.

Every chain is sealed by its head (``audit_heads``: row count, last row id, last ``row_hash``), updated by
every append in the append's own transaction. ``verify_chains`` walks every chain in ``id`` order against
its head, so it finds a changed row (its ``row_hash``), a deleted or inserted row (the next row's
``prev_hash``), rows deleted from, or appended to, the *end* of a chain (the head's count and hash), a
changed or deleted head, and a chain without a head. The heads fold into one hash (``seal``), the head
``keel audit verify`` prints: anchoring it elsewhere also catches someone who rewrites rows *and* heads.

Rows appended before migration 0009 have no chain (NULL): they are the old single chain, in ``id`` order,
sealed by the head ``LEGACY_CHAIN`` that the migration wrote.

The row ``id`` is not hashed (PostgreSQL sequences leave gaps after rolled-back transactions); a chain's
order is its append order, which is ``id`` order because a chain's appends draw their ids under its head's
lock.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, Protocol

from keel.records.types import AuditEvent

__all__ = [
    "GENESIS",
    "HASHED_FIELDS",
    "LEGACY_CHAIN",
    "ChainBreak",
    "ChainReport",
    "ChainedRow",
    "SealedHead",
    "canonical",
    "chain_of",
    "normalise",
    "row_hash",
    "seal",
    "verify_chains",
]

GENESIS = "0" * 64
"""``prev_hash`` of the first row of the log."""

HASHED_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(AuditEvent))
"""Every field an audit row is appended with (not ``id``, ``prev_hash`` or ``row_hash``)."""

LEGACY_CHAIN = -1
"""The head key sealing the rows appended before migration 0009 (``chain`` NULL); thread chains are >= 0."""


def chain_of(thread_id: str) -> int:
    """The chain of a thread's rows: the first 63 bits of ``sha256(thread_id)`` (stable, never negative)."""
    digest = hashlib.sha256(thread_id.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") >> 1


class ChainedRow(Protocol):
    """What verification reads of a stored row (``keel.records.AuditRow`` is one)."""

    id: int
    chain: int | None
    prev_hash: str | None
    row_hash: str | None


class SealedHead(Protocol):
    """What verification reads of a chain's head (``keel.records.AuditHead`` is one)."""

    chain: int
    row_count: int
    last_id: int | None
    head_hash: str


def _json_value(value: Any) -> Any:
    """A value as it comes back from the JSON column (tuples become lists, keys become strings)."""
    return json.loads(json.dumps(value, default=str, allow_nan=False))


def normalise(values: Mapping[str, Any]) -> dict[str, Any]:
    """The hashed fields as they will be stored: ``args`` through a JSON round trip, ``ts`` in UTC."""
    out = {name: values.get(name) for name in HASHED_FIELDS}
    if out.get("args") is not None:
        out["args"] = _json_value(out["args"])
    return out


def canonical(values: Mapping[str, Any]) -> bytes:
    """Canonical JSON of a row's hashed fields: sorted keys, no whitespace, NULL fields left out.

    Leaving NULLs out keeps old rows valid when a nullable column is added later.
    """
    data: dict[str, Any] = {}
    for name in HASHED_FIELDS:
        value = values.get(name)
        if value is None:
            continue
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError(f"naive datetime in audit field {name!r}")
            value = value.astimezone(UTC).isoformat(timespec="microseconds")
        data[name] = value
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8", "surrogatepass")


def row_hash(prev_hash: str, values: Mapping[str, Any]) -> str:
    """``sha256(prev_hash + canonical(values))`` as hex."""
    return hashlib.sha256(prev_hash.encode("ascii") + canonical(values)).hexdigest()


def seal(heads: Iterable[SealedHead]) -> str:
    """The one head over every chain's head, given in ``chain`` order: sha256 over
    ``"{chain}:{row_count}:{head_hash}\\n"`` lines; ``GENESIS`` when there is no chain."""
    digest, empty = hashlib.sha256(), True
    for head in heads:
        digest.update(_seal_line(head))
        empty = False
    return GENESIS if empty else digest.hexdigest()


def _seal_line(head: SealedHead) -> bytes:
    return f"{head.chain}:{head.row_count}:{head.head_hash}\n".encode("ascii")


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainBreak:
    """The first row (or head) that is not what was appended."""

    row_id: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainReport:
    """The outcome of a verification: rows and chains checked, the sealed head, and the first break if any."""

    rows: int
    chains: int
    head: str
    """``seal`` over every chain's head (``GENESIS`` for an empty log); meaningful when ``ok``."""
    last_id: int | None
    """The highest row id checked."""
    broken: ChainBreak | None = None

    @property
    def ok(self) -> bool:
        return self.broken is None

    def describe(self) -> str:
        """One line for operators."""
        if self.broken is not None:
            return f"audit chain broken at row {self.broken.row_id}: {self.broken.reason}"
        return f"audit chain ok: {self.rows} rows in {self.chains} chains, sealed head {self.head}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rows": self.rows,
            "chains": self.chains,
            "head": self.head,
            "last_id": self.last_id,
            "bad_row": self.broken.row_id if self.broken else None,
            "reason": self.broken.reason if self.broken else None,
        }


_CHANGED = "row_hash does not match its contents: the row was changed"


class _Heads:
    """The heads, in ``chain`` order, one at a time with a look ahead."""

    def __init__(self, pages: AsyncIterator[list[Any]]) -> None:
        self._pages, self._page, self._at, self._done = pages, [], 0, False

    async def peek(self) -> Any | None:
        while self._at >= len(self._page) and not self._done:
            try:
                self._page, self._at = await anext(self._pages), 0
            except StopAsyncIteration:
                self._done = True
        return self._page[self._at] if self._at < len(self._page) else None

    def take(self) -> None:
        self._at += 1


class _Verifier:
    def __init__(self, heads: AsyncIterator[list[Any]]) -> None:
        self.heads = _Heads(heads)
        self.digest = hashlib.sha256()
        self.rows, self.chains, self.last_id = 0, 0, None
        self.key: int | None = None
        self.head: Any = None
        self.prev, self.prev_id, self.count = GENESIS, None, 0

    async def open(self, key: int, first: Any) -> ChainBreak | None:
        """Start chain ``key`` at its first row ``first``, after sealing the heads before it."""
        if self.key is not None and key < self.key:
            return ChainBreak(row_id=first.id, reason="rows out of chain order (a bug in the reader)")
        if (broken := await self._heads_before(key)) is not None:
            return broken
        head = await self.heads.peek()
        if head is None or head.chain != key:
            return ChainBreak(
                row_id=first.id,
                reason=f"chain {key} has no sealed head: its head was deleted, or its rows were inserted",
            )
        self.heads.take()
        self.key, self.head, self.prev, self.prev_id, self.count = key, head, GENESIS, None, 0
        return None

    def check(self, row: Any) -> ChainBreak | None:
        if row.prev_hash != self.prev:
            before = f"row {self.prev_id}" if self.prev_id is not None else "the start of its chain"
            return ChainBreak(
                row_id=row.id,
                reason=f"prev_hash does not match {before}: a row before it was deleted, inserted "
                "or rewritten",
            )
        expected = row_hash(row.prev_hash, {name: getattr(row, name) for name in HASHED_FIELDS})
        if row.row_hash != expected:
            return ChainBreak(row_id=row.id, reason=_CHANGED)
        if self.count >= self.head.row_count:
            return ChainBreak(
                row_id=row.id,
                reason=f"row beyond its chain's sealed head ({self.head.row_count} rows up to row "
                f"{self.head.last_id}): it was inserted at the chain's end",
            )
        self.prev, self.prev_id, self.count, self.rows = row.row_hash, row.id, self.count + 1, self.rows + 1
        self.last_id = row.id if self.last_id is None else max(self.last_id, row.id)
        return None

    def close(self) -> ChainBreak | None:
        """End the current chain: it must end where its head says."""
        head = self.head
        if head is None:
            return None
        self.head = None
        if self.count < head.row_count:
            return ChainBreak(
                row_id=head.last_id if head.last_id is not None else -1,
                reason=f"chain {head.chain} ends at row {self.prev_id} after {self.count} rows, but its "
                f"sealed head has {head.row_count} rows up to row {head.last_id}: "
                "rows at its end were deleted",
            )
        if self.prev != head.head_hash or self.prev_id != head.last_id:
            return ChainBreak(
                row_id=self.prev_id if self.prev_id is not None else -1,
                reason=f"the last row of chain {head.chain} does not match its sealed head (row "
                f"{head.last_id}): the head or the last row was rewritten",
            )
        self._seal(head)
        return None

    async def finish(self) -> ChainBreak | None:
        if (broken := self.close()) is not None:
            return broken
        return await self._heads_before(None)

    async def _heads_before(self, key: int | None) -> ChainBreak | None:
        """Seal the heads of chains before ``key`` (all if None): each must be of an empty chain."""
        while (head := await self.heads.peek()) is not None and (key is None or head.chain < key):
            if head.row_count:
                return ChainBreak(
                    row_id=head.last_id if head.last_id is not None else -1,
                    reason=f"chain {head.chain} has a sealed head of {head.row_count} rows up to row "
                    f"{head.last_id} but no rows: they were deleted",
                )
            self.heads.take()
            self._seal(head)
        return None

    def _seal(self, head: Any) -> None:
        self.digest.update(_seal_line(head))
        self.chains += 1

    def report(self, broken: ChainBreak | None = None) -> ChainReport:
        head = self.digest.hexdigest() if self.chains else GENESIS
        return ChainReport(rows=self.rows, chains=self.chains, head=head, last_id=self.last_id, broken=broken)


async def verify_chains(rows: AsyncIterator[list[Any]], heads: AsyncIterator[list[Any]]) -> ChainReport:
    """Verify every chain against its sealed head; stops at the first break.

    ``rows`` arrive in pages ordered by chain, then ``id`` (the legacy rows, chain None, first); ``heads``
    in pages ordered by chain (``Records.verify_audit`` reads both from one snapshot).
    """
    v = _Verifier(heads)
    async for page in rows:
        for row in page:
            key = LEGACY_CHAIN if row.chain is None else row.chain
            broken = (v.close() or await v.open(key, row)) if key != v.key else None
            if (broken := broken or v.check(row)) is not None:
                return v.report(broken)
    return v.report(await v.finish())
