"""Rollout state (`rollout_arms`): the part of `Records` that holds what operators and guard rails changed in
a rollout, shared by every process, and the window of an arm's finished runs the guard rails judge.

- `set_arm_weight`, `stop_arm` and `resume_arm` each write the change and its audit row (`rollout_set`,
  `rollout_stop`, `rollout_resume`; thread `rollout/<rollout>/<arm>`, a hash chain per arm) in one
  transaction. A rollout is named (rollout.yaml's `name`, else the agent's): one database may hold several.
- `stop_arm` is conditional (an upsert that changes only a running arm): two processes whose guard rails
  trip together stop the arm once, and exactly one of them writes the audit row.
- `arm_window` reads one arm's finished executions since a time (the index `(arm, started_at)`).
"""

from __future__ import annotations

import uuid
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from keel.records.tables import executions, rollout_arms
from keel.records.types import AuditEvent, _Row, utcnow
from keel.redaction import redact_text

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["ArmState", "ArmWindow", "RolloutStore", "FINISHED_STATUSES", "ROLLOUT_EVENTS"]

FINISHED_STATUSES = ("succeeded", "failed", "terminated")
"""The executions a rollout judges: those that ended (running, paused and interrupted ones have not)."""
ROLLOUT_EVENTS = ("rollout_set", "rollout_stop", "rollout_resume")


@dataclass(frozen=True, kw_only=True, slots=True)
class ArmState(_Row):
    """What changed in one arm since the rollout file: its weight (None: the file's) and its stop."""

    rollout: str
    arm: str
    weight: float | None = None
    stopped_at: datetime | None = None
    stopped_by: str | None = None
    stop_reason: str | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None

    @property
    def stopped(self) -> bool:
        return self.stopped_at is not None


@dataclass(frozen=True, kw_only=True, slots=True)
class ArmWindow(_Row):
    """One arm's finished executions over a window, as the guard rails judge them."""

    arm: str
    since: datetime
    runs: int = 0
    succeeded: int = 0
    tool_calls: int = 0
    tool_failures: int = 0
    cost: Decimal = Decimal("0")

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.runs if self.runs else None

    @property
    def tool_failure_rate(self) -> float | None:
        return self.tool_failures / self.tool_calls if self.tool_calls else None

    @property
    def cost_per_run(self) -> float | None:
        return float(self.cost) / self.runs if self.runs else None

    def figures(self) -> dict[str, Any]:
        """What the guard rails judge, as the stop's audit row and `keel rollout status` show it."""
        return {
            "runs": self.runs,
            "success_rate": self.success_rate,
            "tool_failure_rate": self.tool_failure_rate,
            "cost_per_run_usd": self.cost_per_run,
        }


class RolloutStore:
    """`Records`' rollout methods (a base class of `Records`, which provides the connections)."""

    _dialect: str

    if TYPE_CHECKING:

        def _connect(self, *, read: bool = False) -> AbstractAsyncContextManager[AsyncConnection]: ...
        def _insert(self, table: sa.Table) -> Any: ...
        async def _all(self, query: sa.Select[Any]) -> list[sa.Row[Any]]: ...
        async def append_audit(self, ev: AuditEvent, *, conn: AsyncConnection | None = None) -> int: ...

    async def rollout_state(self, rollout: str) -> dict[str, ArmState]:
        """Every arm of `rollout` an operator or a guard rail changed, by name (one read)."""
        query = sa.select(rollout_arms).where(rollout_arms.c.rollout == rollout)
        return {r.arm: ArmState(**r._mapping) for r in await self._all(query)}

    async def set_arm_weight(
        self, rollout: str, arm: str, weight: float, *, by: str, role: str, tenant: str = "default"
    ) -> ArmState:
        """Set `arm`'s weight (overriding the file's) and audit it; the arm's stop, if any, stays."""
        if not weight >= 0:
            raise ValueError(f"weight must be a number >= 0, got {weight}")
        now = utcnow()
        stmt = self._insert(rollout_arms).values(
            rollout=rollout, arm=arm, weight=weight, updated_at=now, updated_by=by
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[rollout_arms.c.rollout, rollout_arms.c.arm],
            set_={"weight": weight, "updated_at": now, "updated_by": by},
        ).returning(*rollout_arms.columns)
        async with self._connect() as conn:
            row = (await conn.execute(stmt)).one()
            await self.append_audit(
                _event(
                    rollout,
                    arm,
                    "rollout_set",
                    by,
                    role,
                    tenant,
                    f"arm {arm} weight set to {weight:g}",
                    {"weight": weight},
                ),
                conn=conn,
            )
        return ArmState(**row._mapping)

    async def stop_arm(
        self,
        rollout: str,
        arm: str,
        *,
        by: str,
        role: str,
        reason: str,
        tenant: str = "default",
        figures: dict[str, Any] | None = None,
    ) -> bool:
        """Stop `arm` unless it is stopped already; True when this call stopped it (then, and only then,
        with its audit row `rollout_stop` naming `reason`, in the same transaction)."""
        now = utcnow()
        reason = redact_text(reason)
        values = {
            "stopped_at": now,
            "stopped_by": by,
            "stop_reason": reason,
            "updated_at": now,
            "updated_by": by,
        }
        stmt = self._insert(rollout_arms).values(rollout=rollout, arm=arm, **values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[rollout_arms.c.rollout, rollout_arms.c.arm],
            set_=values,
            where=rollout_arms.c.stopped_at.is_(None),
        ).returning(rollout_arms.c.arm)
        async with self._connect() as conn:
            if (await conn.execute(stmt)).first() is None:
                return False
            await self.append_audit(
                _event(
                    rollout, arm, "rollout_stop", by, role, tenant, f"arm {arm} stopped: {reason}", figures
                ),
                conn=conn,
            )
        return True

    async def resume_arm(
        self, rollout: str, arm: str, *, by: str, role: str, tenant: str = "default"
    ) -> bool:
        """Clear `arm`'s stop (its users return to it by weight); True when it was stopped, with the audit
        row `rollout_resume` in the same transaction."""
        now = utcnow()
        stmt = (
            sa.update(rollout_arms)
            .where(
                rollout_arms.c.rollout == rollout,
                rollout_arms.c.arm == arm,
                rollout_arms.c.stopped_at.is_not(None),
            )
            .values(stopped_at=None, stopped_by=None, stop_reason=None, updated_at=now, updated_by=by)
            .returning(rollout_arms.c.arm)
        )
        async with self._connect() as conn:
            if (await conn.execute(stmt)).first() is None:
                return False
            await self.append_audit(
                _event(rollout, arm, "rollout_resume", by, role, tenant, f"arm {arm} resumed"), conn=conn
            )
        return True

    async def arm_window(self, arm: str, version: str, since: datetime) -> ArmWindow:
        """`arm`'s executions of `version` (the one its config runs now) that started at or after `since`
        and have finished."""
        query = sa.select(
            executions.c.status, executions.c.cost, executions.c.tools_used, executions.c.tools_failed
        ).where(
            executions.c.arm == arm,
            executions.c.started_at >= since,
            executions.c.version == version,
            executions.c.status.in_(FINISHED_STATUSES),
        )
        runs = succeeded = calls = failures = 0
        cost = Decimal("0")
        for row in await self._all(query):
            runs += 1
            succeeded += row.status == "succeeded"
            calls += len(row.tools_used or ())
            failures += len(row.tools_failed or ())
            cost += Decimal(str(row.cost or 0))
        return ArmWindow(
            arm=arm,
            since=since,
            runs=runs,
            succeeded=succeeded,
            tool_calls=calls,
            tool_failures=failures,
            cost=cost,
        )


def _event(
    rollout: str,
    arm: str,
    event: str,
    by: str,
    role: str,
    tenant: str,
    detail: str,
    args: dict[str, Any] | None = None,
) -> AuditEvent:
    return AuditEvent(
        execution_id=str(uuid.uuid4()),
        thread_id=f"rollout/{rollout}/{arm}",
        user_id=by,
        role=role,
        tenant=tenant,
        event=event,
        detail=detail,
        args=args,
    )
