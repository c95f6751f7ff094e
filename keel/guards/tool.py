"""The guard path of one tool call: rate limits and the tool's circuit breaker (one atomic hot-state
check, one Redis round trip), then its cost reservation."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from keel.budget import BudgetExceeded, BudgetLedger, Reservation
from keel.context import RunContext
from keel.costs import PriceTable, usd
from keel.guards.errors import STORE_ERRORS, ToolGuardRefused
from keel.guards.model import settle_owed
from keel.guards.rate_limit import RateLimit
from keel.guards.tool_breaker import AdmittedCall, ToolBreaker
from keel.hotstate import BreakerConfig, BreakerStore, RateWindows, ToolAdmission, admission_for
from keel.observability.metrics import record_breaker_state
from keel.tool_status import TOOL_FAILURES

__all__ = ["ToolGuard", "ToolGate"]


@dataclass(slots=True, kw_only=True)
class ToolGate:
    """One admitted tool call; `charged(outcome)` settles it and reports it to the breaker."""

    guard: ToolGuard
    tool: str
    probe: bool
    failures: int
    reservation: Reservation | None
    closed: bool = False
    settled: bool = False

    async def settle(self, conn: AsyncConnection) -> None:
        """Charge the call inside `conn`, the transaction that records its result (and, for a
        transactional tool, its effect): committed together, so a crash cannot leave one alone."""
        if self.reservation is not None:
            await self.guard.ledger.settle(self.reservation, self.reservation.estimate, conn=conn)
        self.settled = True

    async def charged(self, outcome: Any) -> Any:
        """Settle (ok) or release (failed) the reservation; return the outcome with its cost set."""
        self.closed = True
        ok = outcome.status == "ok"
        fault = outcome.status in TOOL_FAILURES  # refused, invalid: not the tool's fault
        cost = Decimal(0)
        if self.reservation is not None:
            if ok:
                cost = self.reservation.estimate
                if not self.settled:
                    await self.guard.ledger.settle(self.reservation, cost)
            else:
                await self.guard.ledger.release(self.reservation, f"tool {outcome.status}")
        await self.guard.tell_breaker(self.tool, ok=not fault, probe=self.probe, failures=self.failures)
        return replace(outcome, cost=float(cost)) if hasattr(outcome, "cost") else outcome


@dataclass(slots=True, kw_only=True)
class ToolGuard:
    """Checks made before a tool runs; every refusal is a message for the model, and nothing runs."""

    rates: RateWindows
    breakers: BreakerStore
    config: BreakerConfig
    rate_limit: RateLimit
    prices: PriceTable
    ledger: BudgetLedger
    breaker: ToolBreaker = field(default_factory=ToolBreaker)
    admission: ToolAdmission = field(init=False, repr=False)
    """The breaker acquire and every rate-limit hit of a call, checked and counted in one step."""

    def __post_init__(self) -> None:
        self.admission = admission_for(self.breakers, self.rates)

    @asynccontextmanager
    async def tool_call(
        self, tool: str, run: RunContext, thread_id: str, call_id: str
    ) -> AsyncIterator[ToolGate]:
        """Admit one call or raise ToolGuardRefused; release what was held if the call never finishes."""
        try:
            admission = await self.admission.admit(
                f"tool:{tool}", self.config, self.rate_limit.hits(tool, run)
            )
            decision = admission.breaker
            admitted = AdmittedCall(tool=tool, admission=admission)
            for guard in (self.breaker, self.rate_limit):
                if (refusal := await guard.check(admitted)) is not None:
                    raise ToolGuardRefused(refusal)
            reservation = await self._reserve(tool, run, thread_id)
        except BudgetExceeded as exc:
            raise ToolGuardRefused(str(exc)) from exc
        except STORE_ERRORS as exc:
            raise ToolGuardRefused(
                f"{tool} was not run: its guards could not be checked ({exc}); try again later"
            ) from exc
        gate = ToolGate(
            guard=self, tool=tool, probe=decision.probe, failures=decision.failures, reservation=reservation
        )
        try:
            yield gate
        finally:
            if not gate.closed and reservation is not None:
                with contextlib.suppress(*STORE_ERRORS):
                    await asyncio.shield(self.ledger.release(reservation, "tool call cancelled"))

    async def settle_owed(self, owed: Sequence[Mapping[str, str]], *, conn: AsyncConnection) -> None:
        """Settle the run's owed model charges inside `conn` (a tool step's transaction)."""
        await settle_owed(self.ledger, owed, conn)

    def charge_of(self, tool: str) -> float:
        """What one successful call of `tool` is charged (its price)."""
        return float(usd(self.prices.tool_cost(tool)))

    async def _reserve(self, tool: str, run: RunContext, thread_id: str) -> Reservation | None:
        price = usd(self.prices.tool_cost(tool))
        if price == 0:
            return None
        return await self.ledger.reserve(
            user_id=run.user_id,
            thread_id=thread_id,
            execution_id=run.execution_id,
            kind="tool",
            name=tool,
            estimate=price,
        )

    async def tell_breaker(self, tool: str, *, ok: bool, probe: bool, failures: int) -> None:
        """Report an outcome; a success on a healthy closed breaker needs no write."""
        if ok and not probe and failures == 0:
            return
        with contextlib.suppress(*STORE_ERRORS):
            state = await asyncio.shield(
                self.breakers.record(f"tool:{tool}", self.config, ok=ok, probe=probe)
            )
            record_breaker_state(f"tool:{tool}", state)
