"""Build the guards for a profile: in-process hot state (embedded) or Redis (postgres)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any

from keel.budget import BudgetLedger
from keel.costs import PriceTable
from keel.guards.arg_size import ArgumentSize
from keel.guards.budget import Budget
from keel.guards.deadline import Deadline
from keel.guards.guard import Guard, NextCall
from keel.guards.model_breaker import ModelBreaker
from keel.guards.rate_limit import RateLimit
from keel.guards.run import Guards
from keel.guards.run_cost import RunCostCap
from keel.guards.steps import StepLimit
from keel.guards.tool import ToolGuard
from keel.guards.turn_calls import TurnCallCap
from keel.hotstate import (
    BreakerConfig,
    BreakerStore,
    LimitsPolicy,
    MemoryBreakers,
    MemoryRateWindows,
    RateWindows,
)
from keel.records import Records
from keel.settings import Settings

__all__ = ["build_guards", "call_guards", "state_guards"]


def state_guards(settings: Settings) -> list[Guard[NextCall]]:
    """The guards that read only the run's state: steps, deadline, run cost cap."""
    return [StepLimit(settings.max_steps), Deadline(), RunCostCap(Decimal(str(settings.run_cost_cap)))]


def call_guards(settings: Settings) -> list[Guard[Any]]:
    """The checks on each proposed tool call before the policy: per-turn cap, argument size."""
    return [TurnCallCap(settings.max_tool_calls_per_turn), ArgumentSize(settings.max_args_bytes)]


async def _nothing() -> None:
    return None


def build_guards(
    settings: Settings,
    records: Records,
    prices: PriceTable,
    models: Sequence[str],
    extra: Sequence[Guard[NextCall]] = (),
) -> tuple[Guards, Callable[[], Awaitable[None]]]:
    """The guards and a function closing their connections. No I/O happens here.

    Before every model call, in order: steps, deadline, run cost cap, budget, model breaker, then
    `extra` (an application's own guards, each with its row in keel/stop_reasons.py)."""
    for model in models:
        prices.check_model(model)
    policy = LimitsPolicy.load(settings.limits_file)
    breakers: BreakerStore
    rates: RateWindows
    close: Callable[[], Awaitable[None]] = _nothing
    if settings.profile == "postgres":
        from keel.hotstate.redis import RedisBreakers, RedisRateWindows, redis_client  # redis: postgres only

        client = redis_client(settings.redis_url)
        breakers = RedisBreakers(client, settings.redis_url, prefix=settings.redis_prefix)
        rates = RedisRateWindows(settings.redis_url, prefix=settings.redis_prefix)

        async def close() -> None:
            await client.aclose()
            await rates.aclose()

    else:
        breakers, rates = MemoryBreakers(), MemoryRateWindows()
    config = BreakerConfig(
        failure_threshold=settings.breaker_failure_threshold, recovery_s=settings.breaker_recovery_s
    )
    ledger = BudgetLedger(records, default_usd=settings.budget_default_usd)
    tools = ToolGuard(
        rates=rates,
        breakers=breakers,
        config=config,
        rate_limit=RateLimit(policy),
        prices=prices,
        ledger=ledger,
    )
    guards = Guards(
        before_model=[
            *state_guards(settings),
            Budget(ledger),
            ModelBreaker(breakers, config),
            *extra,
        ],
        before_tool=call_guards(settings),
        prices=prices,
        ledger=ledger,
        breakers=breakers,
        breaker=config,
        tools=tools,
        max_tokens=settings.max_output_tokens,
        models=list(models),
    )
    return guards, close
