"""`NoGuards`: the same methods as `Guards`, checking nothing and spending nothing.

The benchmark's unguarded baseline injects it (`Backends.from_settings(..., guards=NoGuards(...))`) so
that production code never branches on "are there guards?"."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from langchain_core.messages import BaseMessage

from keel.context import RunContext
from keel.costs import PriceTable, usd
from keel.guards.errors import GuardFailure
from keel.guards.guard import Guard, NextCall
from keel.guards.model import ModelGate
from keel.guards.run import first_stop

__all__ = ["NoGuards", "NoToolGuard"]


@dataclass(slots=True, kw_only=True)
class FreeToolGate:
    """An admitted tool call nothing reserved: a successful call costs its price in the run's state."""

    price: float

    async def settle(self, conn: Any) -> None:
        return None

    async def charged(self, outcome: Any) -> Any:
        return replace(outcome, cost=self.price if outcome.status == "ok" else 0.0)


@dataclass(slots=True, kw_only=True)
class NoToolGuard:
    """Admits every tool call: no rate window, no breaker, no reservation."""

    prices: PriceTable

    @asynccontextmanager
    async def tool_call(
        self, tool: str, run: RunContext, thread_id: str, call_id: str
    ) -> AsyncIterator[FreeToolGate]:
        yield FreeToolGate(price=self.charge_of(tool))

    async def settle_owed(self, owed: Sequence[Mapping[str, str]], *, conn: Any) -> None:
        """No ledger: nothing is owed."""

    def charge_of(self, tool: str) -> float:
        return float(usd(self.prices.tool_cost(tool)))


@dataclass(slots=True, kw_only=True)
class NoGuards:
    """No checks before model or tool calls, no reservations, no breakers: only the benchmark uses it."""

    prices: PriceTable
    models: Sequence[str]
    ledger: None = None
    """No budget ledger: nothing is reserved or charged."""
    before_model: Sequence[Guard[NextCall]] = ()
    """Guards that read only the run's state (steps, deadline) may still be given: the baseline keeps them."""
    before_tool: Sequence[Guard[Any]] = ()
    tools: NoToolGuard = field(init=False)

    def __post_init__(self) -> None:
        self.tools = NoToolGuard(prices=self.prices)

    def model_at(self, state: Mapping[str, Any]) -> str:
        return self.models[min(state.get("model_index", 0), len(self.models) - 1)]

    def estimate(
        self, model: str, messages: Sequence[BaseMessage], tools: Sequence[dict[str, Any]] = ()
    ) -> Decimal:
        return Decimal(0)

    async def check(
        self, state: Mapping[str, Any], run: RunContext, tools: Sequence[dict[str, Any]] = ()
    ) -> GuardFailure | None:
        """Only the guards given (none by default): they see a bound of 0 (nothing is priced)."""
        model = self.model_at(state)
        view = NextCall(state=state, run=run, model=model, now=time.time(), bound=Decimal)
        return await first_stop(self.before_model, state, view)

    async def next_model(self, state: Mapping[str, Any]) -> int | None:
        return None

    async def settle_owed(self, owed: Sequence[Mapping[str, str]], *, conn: Any) -> None:
        """No ledger: nothing is owed."""

    def model_call(
        self,
        run: RunContext,
        thread_id: str,
        model: str,
        estimate: Decimal,
        owed: Sequence[Mapping[str, str]] = (),
    ) -> AbstractAsyncContextManager[ModelGate]:
        return _admitted()

    async def spent_by(
        self, execution_id: str, counted: float, *, conn: Any = None, owed: Sequence[Mapping[str, str]] = ()
    ) -> float:
        return counted

    async def release_open(self, execution_id: str, why: str) -> None:
        return None


@asynccontextmanager
async def _admitted() -> AsyncIterator[ModelGate]:
    yield ModelGate()
