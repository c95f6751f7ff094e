"""Drill: a throwaway PostgreSQL cluster (records and checkpoints) stopped hard (`pg_ctl stop -m
immediate`) or its connections terminated (`pg_terminate_backend`) inside model calls, then restarted.

A run whose database comes back while it still goes carries on: dropped connections are replaced at
checkout (before that fix, a raw psycopg error escaped and the run was stuck `running`); one whose
database stays down stops with StoreUnavailable and is resumed once it is back. Every run must end
with no email sent twice, nothing unaudited, the ledger exact, no raw driver error escaping keel, and
nothing left `running`. The machine's shared PostgreSQL is never touched.
"""

from __future__ import annotations

import asyncio
import random
import uuid

import pytest
from _drill import Totals, check, drill_seed, jobs
from _invariants import *  # noqa: F403 - the shared zero-tolerance tests
from _runs import drive_job, outage_model
from _servers import ThrowawayPostgres

from keel.app.service import Keel
from keel.settings import Settings

pytestmark = pytest.mark.redis  # the shared Redis holds this drill's hot state, under its own prefix


@pytest.fixture(scope="module")
async def drill(throwaway_postgres: ThrowawayPostgres, tmp_path_factory: pytest.TempPathFactory) -> Totals:
    """Ten runs, a quarter of model calls stopping or cutting off the database; checked once."""
    seed = drill_seed(4404)
    rng = random.Random(seed)
    drill_jobs = jobs(10, rng, prefix="pg", approval_share=0.2)
    totals = Totals(name="postgres stop -m immediate / terminate", seed=seed)
    settings = Settings(
        profile="postgres",
        database_url=throwaway_postgres.url,
        redis_prefix=f"keeldrill:{uuid.uuid4().hex[:8]}:",
        home=tmp_path_factory.mktemp("pg-drill"),
        memory_enabled=False,
        log_level="error",
        records_pool_timeout_s=2.0,  # a database that stays down fails the step in 2 s, not 30
        checkpoint_pool_timeout_s=2.0,
    )

    def outage() -> None:
        if not throwaway_postgres.started:
            return
        totals.faults += 1
        draw = rng.random()
        if draw < 1 / 3:
            throwaway_postgres.crash(down_s=0.3)  # back while the run is still going
        elif draw < 2 / 3:
            throwaway_postgres.terminate_backends()
        else:
            throwaway_postgres.stop_hard()  # down until the drill revives it: the run must fail cleanly

    async def revive() -> None:
        await asyncio.to_thread(throwaway_postgres.wait_restarted)

    async with Keel.open(settings, model=outage_model(rng, 0.25, outage), model_name="fake-model") as keel:
        for job in drill_jobs:
            await drive_job(keel, job, totals, attempts=6, after_step=revive, until_succeeded=True)
    await revive()
    await check(settings, drill_jobs, totals)
    print(totals.table())
    return totals


def test_the_drill_cut_the_database_off(drill: Totals) -> None:
    assert drill.faults > 0 and drill.resumed > 0, drill.table()
