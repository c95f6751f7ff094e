"""The audit log's hash chain: how a row is hashed, and how the whole log is verified.

Every audit row stores ``prev_hash`` (the ``row_hash`` of the row appended before it; ``GENESIS`` for
the first) and ``row_hash = sha256(prev_hash + canonical JSON of the row's fields)``. Changing any field
of a row breaks its ``row_hash``; deleting or inserting a row breaks the next row's ``prev_hash``; so
``verify`` finds the first row that is not what was appended. Removing rows from the *end* of the log
leaves a shorter valid chain: anchor the head (``ChainReport.head``) somewhere else to catch that.

The row ``id`` is not hashed (PostgreSQL sequences leave gaps after rolled-back transactions); the
chain order is the append order, which is ``id`` order because appends are serialised.
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
    "AUDIT_LOCK_KEY",
    "ChainBreak",
    "ChainReport",
    "ChainedRow",
    "canonical",
    "normalise",
    "row_hash",
    "verify_rows",
    "verify_pages",
]

GENESIS = "0" * 64
"""``prev_hash`` of the first row of the log."""

HASHED_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(AuditEvent))
"""Every field an audit row is appended with (not ``id``, ``prev_hash`` or ``row_hash``)."""

AUDIT_LOCK_KEY = 0x6B65656C_6175_64
"""``pg_advisory_xact_lock`` key serialising audit appends on PostgreSQL (distinct from the migration's)."""


class ChainedRow(Protocol):
    """What verification reads of a stored row (``keel.records.AuditRow`` is one)."""

    id: int
    prev_hash: str | None
    row_hash: str | None


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


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainBreak:
    """The first row that is not what was appended."""

    row_id: int
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainReport:
    """The outcome of a verification: rows checked, the head hash, and the first break if any."""

    rows: int
    head: str
    """``row_hash`` of the last row checked (``GENESIS`` for an empty log)."""
    last_id: int | None
    broken: ChainBreak | None = None

    @property
    def ok(self) -> bool:
        return self.broken is None

    def describe(self) -> str:
        """One line for operators."""
        if self.broken is not None:
            return f"audit chain broken at row {self.broken.row_id}: {self.broken.reason}"
        return f"audit chain ok: {self.rows} rows, head {self.head} (row {self.last_id})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rows": self.rows,
            "head": self.head,
            "last_id": self.last_id,
            "bad_row": self.broken.row_id if self.broken else None,
            "reason": self.broken.reason if self.broken else None,
        }


_CHANGED = "row_hash does not match its contents: the row was changed"


class _Verifier:
    def __init__(self) -> None:
        self.prev, self.prev_id, self.rows = GENESIS, None, 0

    def check(self, row: Any) -> ChainBreak | None:
        if row.prev_hash != self.prev:
            before = f"row {self.prev_id}" if self.prev_id is not None else "the start of the log"
            return ChainBreak(
                row_id=row.id,
                reason=f"prev_hash does not match {before}: a row before it was deleted, inserted "
                "or rewritten",
            )
        expected = row_hash(row.prev_hash, {name: getattr(row, name) for name in HASHED_FIELDS})
        if row.row_hash != expected:
            return ChainBreak(row_id=row.id, reason=_CHANGED)
        self.prev, self.prev_id, self.rows = row.row_hash, row.id, self.rows + 1
        return None

    def report(self, broken: ChainBreak | None = None) -> ChainReport:
        return ChainReport(rows=self.rows, head=self.prev, last_id=self.prev_id, broken=broken)


def verify_rows(rows: Iterable[Any]) -> ChainReport:
    """Verify rows given in ``id`` order; stops at the first break."""
    v = _Verifier()
    for row in rows:
        if (broken := v.check(row)) is not None:
            return v.report(broken)
    return v.report()


async def verify_pages(pages: AsyncIterator[list[Any]]) -> ChainReport:
    """Verify rows arriving in ``id``-ordered pages (``Records.audit_pages``); stops at the first break."""
    v = _Verifier()
    async for page in pages:
        for row in page:
            if (broken := v.check(row)) is not None:
                return v.report(broken)
    return v.report()
