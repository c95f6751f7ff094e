"""`Guards`: what the graph's guard edges read and what the spending nodes go through."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from langchain_core.messages import BaseMessage

from keel.budget import BudgetExceeded, BudgetLedger
from keel.context import RunContext
from keel.costs import PriceTable
from keel.guards.errors import STORE_ERRORS, GuardFailure, GuardUnavailable, failure_of
from keel.guards.model import ModelGate, model_gate, owed_reservation
from keel.guards.tool import ToolGuard
from keel.hotstate import BreakerConfig, BreakerStore
from keel.observability.logging import user_hash
from keel.observability.metrics import record_breaker_state, record_budget_remaining
from keel.policies.guards import RunLimits, first_failure

__all__ = ["Guards"]


@dataclass(slots=True, kw_only=True)
class Guards:
    """Run guards over the durable ledger and the hot state; built in keel/app/backends.py."""

    limits: RunLimits
    prices: PriceTable
    ledger: BudgetLedger | None
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
        """The guard edge before a model call; reads only. In order: a stop the last call already
        decided (its model overran the reserved bound), steps, deadline, the run cost cap (spent so far
        plus the next call's bound), the user's monthly budget (room for that bound), the model's
        breaker."""
        if stopped := state.get("terminated_reason"):
            return GuardFailure(reason=stopped, message=state.get("error") or "")
        if reason := first_failure(state, self.limits, time.time()):
            return GuardFailure(reason=reason, message="")
        model = self.model_at(state)
        needed = self.estimate(model, state.get("messages", []), tools)
        spent, cap = Decimal(str(state.get("run_cost", 0.0))), Decimal(str(self.limits.run_cost_cap))
        if spent + needed > cap:
            return GuardFailure(
                reason="run_cost_cap",
                message=f"this run has spent ${spent:.6f} of its ${cap:.6f} cap and the next call of "
                f"{model} needs up to ${needed:.6f}",
            )
        try:
            if self.ledger is not None:
                status = await self.ledger.status(run.user_id)
                record_budget_remaining(f"user:{user_hash(run.user_id)}", float(status.remaining))
                if needed > status.remaining:
                    return failure_of(BudgetExceeded(status, needed))
            breaker = await self.breakers.state(f"model:{model}", self.breaker)
            record_breaker_state(f"model:{model}", breaker)
            if breaker == "open":
                return GuardFailure(
                    reason="llm_unavailable", message=f"the circuit breaker of model {model} is open"
                )
        except STORE_ERRORS as exc:
            return failure_of(GuardUnavailable("the run's guards", exc))
        return None

    async def next_model(self, state: Mapping[str, Any]) -> int | None:
        """The next model down the chain whose breaker is not open, or None (then: a canned answer)."""
        for index in range(state.get("model_index", 0) + 1, len(self.models)):
            try:
                if await self.breakers.state(f"model:{self.models[index]}", self.breaker) != "open":
                    return index
            except STORE_ERRORS:
                return None
        return None

    async def settle_owed(self, owed: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
        """Settle model charges the ledger refused earlier (it was down); return those still owed.

        Idempotent: a charge already settled is not charged again; one whose reservation a crash
        recovery released in the meantime is charged now (the call did answer).
        """
        left: list[dict[str, str]] = []
        for item in owed:
            if self.ledger is None:
                break
            res, actual = owed_reservation(dict(item))
            try:
                await self.ledger.settle(res, actual, late=True)
            except STORE_ERRORS:
                left.append(dict(item))
        return left

    def model_call(
        self, run: RunContext, thread_id: str, model: str, estimate: Decimal
    ) -> AbstractAsyncContextManager[ModelGate]:
        """Admit one model call: breaker, then reservation; settle or release on exit."""
        return model_gate(
            ledger=self.ledger,
            breakers=self.breakers,
            config=self.breaker,
            model=model,
            user_id=run.user_id,
            thread_id=thread_id,
            execution_id=run.execution_id,
            estimate=estimate,
        )
