"""Build the guards for a profile: in-process hot state (embedded) or Redis (postgres)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from keel.budget import BudgetLedger
from keel.costs import PriceTable
from keel.guards.run import Guards
from keel.guards.tool import ToolGuard
from keel.hotstate import (
    BreakerConfig,
    BreakerStore,
    LimitsPolicy,
    MemoryBreakers,
    MemoryRateWindows,
    RateWindows,
    RedisBreakers,
    RedisRateWindows,
    redis_client,
)
from keel.policies.guards import RunLimits
from keel.records import Records
from keel.settings import Settings

__all__ = ["build_guards"]


async def _nothing() -> None:
    return None


def build_guards(
    settings: Settings, records: Records, prices: PriceTable, limits: RunLimits, models: Sequence[str]
) -> tuple[Guards, Callable[[], Awaitable[None]]]:
    """The guards and a function closing their connections. No I/O happens here."""
    for model in models:
        prices.check_model(model)
    policy = LimitsPolicy.load(settings.limits_file)
    breakers: BreakerStore
    rates: RateWindows
    close: Callable[[], Awaitable[None]] = _nothing
    if settings.profile == "postgres":
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
        rates=rates, breakers=breakers, config=config, limits=policy, prices=prices, ledger=ledger
    )
    guards = Guards(
        limits=limits,
        prices=prices,
        ledger=ledger,
        breakers=breakers,
        breaker=config,
        tools=tools,
        max_tokens=settings.max_output_tokens,
        models=list(models),
    )
    return guards, close
