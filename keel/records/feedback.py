"""Feedback (`feedback`): the part of `Records` that stores users' scores on executions.

- `add_feedback` upserts on (execution_id, user_id): a user has one score per execution, the latest given
  (score, comment and role replaced, `updated_at` moved, `created_at` kept). With `conn`, inside the caller's
  transaction (`keel.feedback.give_feedback` writes the audit row in the same one).
- The comment passes `keel.redaction.redact_text` and `keel.textsafe` here, where every writer goes through;
  a score outside [-1, 1] is a ValueError before anything is written (the table's CHECK refuses it too).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from keel.records.tables import feedback
from keel.records.types import Feedback, utcnow
from keel.redaction import redact_text
from keel.textsafe import safe_value

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["FeedbackStore", "check_score", "SCORE_RULE"]

SCORE_RULE = "a number in [-1, 1] (-1/0/1, or a rating from 0 to 1)"
_PLACES = Decimal("0.0001")


def check_score(score: object) -> Decimal:
    """`score` as stored (four decimals), or ValueError naming the rule: a number in [-1, 1]."""
    if isinstance(score, bool) or not isinstance(score, int | float | Decimal):
        raise ValueError(f"score must be {SCORE_RULE}, got {score!r}")
    try:
        value = Decimal(str(score))
    except ArithmeticError:
        raise ValueError(f"score must be {SCORE_RULE}, got {score!r}") from None
    if not value.is_finite() or not Decimal(-1) <= value <= Decimal(1):
        raise ValueError(f"score must be {SCORE_RULE}, got {score}")
    return value.quantize(_PLACES)


class FeedbackStore:
    """`Records`' feedback methods (a base class of `Records`, which provides the connections)."""

    _dialect: str

    if TYPE_CHECKING:

        def _join(self, conn: AsyncConnection | None) -> AbstractAsyncContextManager[AsyncConnection]: ...
        def _insert(self, table: sa.Table) -> Any: ...
        async def _all(self, query: sa.Select[Any]) -> list[sa.Row[Any]]: ...

    async def add_feedback(
        self,
        *,
        execution_id: str,
        thread_id: str,
        user_id: str,
        role: str,
        score: object,
        comment: str | None,
        version: str,
        now: datetime | None = None,
        conn: AsyncConnection | None = None,
    ) -> Feedback:
        """Store `user_id`'s score on an execution, replacing the one they gave before; return the row.
        The comment is redacted; a score outside [-1, 1] raises ValueError and nothing is written."""
        now = now or utcnow()
        values = safe_value(
            {
                "execution_id": execution_id,
                "thread_id": thread_id,
                "user_id": user_id,
                "role": role,
                "score": check_score(score),
                "comment": redact_text(comment) if comment else None,
                "version": version,
                "created_at": now,
                "updated_at": now,
            }
        )
        stmt = self._insert(feedback).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[feedback.c.execution_id, feedback.c.user_id],
            set_={
                name: stmt.excluded[name] for name in ("role", "score", "comment", "version", "updated_at")
            },
        ).returning(*feedback.columns)
        async with self._join(conn) as c:
            row = (await c.execute(stmt)).one()
        return Feedback(**row._mapping)

    async def feedback_for(self, execution_id: str) -> list[Feedback]:
        """Every user's feedback on one execution, oldest first."""
        query = sa.select(feedback).where(feedback.c.execution_id == execution_id).order_by(feedback.c.id)
        return [Feedback(**r._mapping) for r in await self._all(query)]

    async def list_feedback(
        self, *, since: datetime | None = None, version: str | None = None, limit: int = 10_000
    ) -> list[Feedback]:
        """Feedback given or changed since `since` (all without), optionally on one version's executions,
        oldest change first, at most `limit` rows."""
        query = sa.select(feedback).order_by(feedback.c.updated_at, feedback.c.id)
        if since is not None:
            query = query.where(feedback.c.updated_at >= since)
        if version is not None:
            query = query.where(feedback.c.version == version)
        return [Feedback(**r._mapping) for r in await self._all(query.limit(limit))]
