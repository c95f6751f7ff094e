"""`Guards`: what the graph's guard edges read and what the spending nodes go through."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from langchain_core.messages import BaseMessage
from sqlalchemy.ext.asyncio import AsyncConnection

from keel.budget import BudgetLedger
from keel.context import RunContext
from keel.costs import PriceTable
from keel.guards.errors import STORE_ERRORS, GuardFailure, GuardUnavailable, failure_of
from keel.guards.guard import Guard, NextCall
from keel.guards.model import ModelGate, model_gate, owed_charges, settle_owed
from keel.guards.tool import ToolGuard
from keel.hotstate import BreakerConfig, BreakerStore

__all__ = ["Guards", "first_stop"]


async def first_stop(
    guards: Sequence[Guard[NextCall]], state: Mapping[str, Any], view: NextCall
) -> GuardFailure | None:
    """A stop the last call already decided (its model overran the reserved bound), else the first of
    `guards` that fails, in order. A store a guard cannot read refuses the call (`guard_unavailable`)."""
    if stopped := state.get("terminated_reason"):
        return GuardFailure(reason=stopped, message=state.get("error") or "")
    for guard in guards:
        try:
            message = await guard.check(view)
        except STORE_ERRORS as exc:
            return failure_of(GuardUnavailable("the run's guards", exc))
        if message is not None:
            return GuardFailure(reason=guard.reason, message=message)
    return None


@dataclass(slots=True, kw_only=True)
class Guards:
    """Run guards over the durable ledger and the hot state; built by keel.guards.build_guards.

    `before_model` is the guard edge's list, in order (keel's: steps, deadline, run cost cap, budget,
    model breaker; then any the application adds); the tool guards sit in `tools` and the executor.
    The benchmark's unguarded baseline uses `keel.guards.NoGuards` instead: same methods, no checks.
    """

    before_model: Sequence[Guard[NextCall]]
    before_tool: Sequence[Guard[Any]]
    """Checked on each proposed tool call before the policy (per-turn cap, argument size)."""
    prices: PriceTable
    ledger: BudgetLedger
    breakers: BreakerStore
    breaker: BreakerConfig
    tools: ToolGuard
    max_tokens: int
    models: Sequence[str]
    """The fallback chain: the primary model first."""

    def model_at(self, state: Mapping[str, Any]) -> str:
        """The model this run is on (it moves down the chain when one is unavailable)."""
        return self.models[min(state.get("model_index", 0), len(self.models) - 1)]

    def estimate(
        self, model: str, messages: Sequence[BaseMessage], tools: Sequence[dict[str, Any]] = ()
    ) -> Decimal:
        """The upper estimate of one call of `model` on `messages` (what a reservation holds)."""
        return self.prices.model_estimate(model, messages, self.max_tokens, tools)

    async def check(
        self, state: Mapping[str, Any], run: RunContext, tools: Sequence[dict[str, Any]] = ()
    ) -> GuardFailure | None:
        """The guard edge before a model call; reads only (see `first_stop`)."""
        model = self.model_at(state)
        view = NextCall(
            state=state,
            run=run,
            model=model,
            now=time.time(),
            bound=lambda: self.estimate(model, state.get("messages", []), tools),
        )
        return await first_stop(self.before_model, state, view)

    async def next_model(self, state: Mapping[str, Any]) -> int | None:
        """The next model down the chain whose breaker is not open, or None (then: a canned answer)."""
        for index in range(state.get("model_index", 0) + 1, len(self.models)):
            try:
                if await self.breakers.state(f"model:{self.models[index]}", self.breaker) != "open":
                    return index
            except STORE_ERRORS:
                return None
        return None

    async def settle_owed(self, owed: Sequence[Mapping[str, str]], *, conn: AsyncConnection) -> None:
        """Settle the model charges the run still owes inside `conn`, the step's transaction."""
        await settle_owed(self.ledger, owed, conn)

    def model_call(
        self,
        run: RunContext,
        thread_id: str,
        model: str,
        estimate: Decimal,
        owed: Sequence[Mapping[str, str]] = (),
    ) -> AbstractAsyncContextManager[ModelGate]:
        """Admit one model call: breaker, then reservation (settling `owed` first, in its transaction);
        the answered call's charge comes back as `gate.owed`, a failed one's reservation is released."""
        return model_gate(
            ledger=self.ledger,
            breakers=self.breakers,
            config=self.breaker,
            model=model,
            user_id=run.user_id,
            thread_id=thread_id,
            execution_id=run.execution_id,
            estimate=estimate,
            owed=owed,
        )

    async def spent_by(
        self,
        execution_id: str,
        counted: float,
        *,
        conn: AsyncConnection | None = None,
        owed: Sequence[Mapping[str, str]] = (),
    ) -> float:
        """What an execution cost: the ledger's figure (it knows calls a crash hid from the state), with
        the charges `owed` that the caller settles later in the same transaction."""
        settling = owed_charges(owed)
        return float(await self.ledger.spent_by(execution_id, conn=conn, settling=settling))

    async def release_open(self, execution_id: str, why: str) -> None:
        """Release what a crashed process had reserved for `execution_id` and never settled."""
        await self.ledger.release_open(execution_id, why)
