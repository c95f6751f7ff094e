"""Drill: a throwaway `redis-server` killed with SIGKILL mid-run (inside model calls) and restarted.

Guards fail closed while Redis is down (the run ends `guard_unavailable`); once it is back, resuming
finishes every run: no email sent twice, nothing unaudited, the ledger exact, no error unexplained.
Records live on a private database of the shared PostgreSQL (as in every postgres test); the shared
Redis is never touched.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from pathlib import Path

import pytest
from _drill import Totals, check, drill_seed, jobs
from _runs import drive_job, outage_model
from _servers import ThrowawayRedis

from keel.app.service import Keel
from keel.settings import Settings

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


async def test_redis_killed_and_restarted_mid_run(
    throwaway_redis: ThrowawayRedis, pg_url: str, tmp_path: Path
) -> None:
    seed = drill_seed(3303)
    rng = random.Random(seed)
    drill_jobs = jobs(10, rng, prefix="rd", approval_share=0.2)
    totals = Totals(name="redis kill -9", seed=seed)
    settings = Settings(
        profile="postgres",
        database_url=pg_url,
        redis_url=throwaway_redis.url,
        redis_prefix=f"keeldrill:{uuid.uuid4().hex[:8]}:",
        home=tmp_path,
        memory_enabled=False,
        log_level="error",
    )

    async def revive() -> None:
        if not throwaway_redis.up:
            await asyncio.to_thread(throwaway_redis.start)

    model = outage_model(rng, 0.3, throwaway_redis.kill)
    async with Keel.open(settings, model=model, model_name="fake-model") as keel:
        for job in drill_jobs:
            await drive_job(keel, job, totals, attempts=6, after_step=revive, until_succeeded=True)
    totals.faults = throwaway_redis.kills
    await revive()
    await check(settings, drill_jobs, totals)
    print(totals.table())
    assert totals.faults > 0 and totals.resumed > 0, totals.table()
    assert totals.bad() == 0, totals.table()
