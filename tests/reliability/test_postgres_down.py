"""The checkpoint database stays down longer than the pool waits: the run stops with one clear line
(StoreUnavailable), and once the database is back `resume` finishes it, the email sent once.

Before the fix a raw `psycopg_pool.PoolTimeout` escaped `Keel.run`, and `resume` refused the thread
("finished (running)"): the step's writes were saved but its checkpoint was not, so LangGraph's `next` was
empty although the step's task was still there to be applied.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from _drill import Job, email_turn
from _servers import ThrowawayPostgres

from keel.app.service import Keel
from keel.errors import StoreUnavailable
from keel.settings import Settings
from keel.testing.fake_model import FakeChatModel

pytestmark = pytest.mark.redis  # the shared Redis holds the hot state, under a private prefix


async def test_a_run_cut_off_by_a_database_that_stays_down_is_resumed_once_it_is_back(
    throwaway_postgres: ThrowawayPostgres, tmp_path: Path
) -> None:
    calls = {"n": 0}

    def turn(messages):  # the first model call takes the database down for 3 s (the pools wait 2 s)
        calls["n"] += 1
        if calls["n"] == 1:
            throwaway_postgres.crash(down_s=3.0)
        return email_turn(messages)

    settings = Settings(
        profile="postgres",
        database_url=throwaway_postgres.url,
        redis_prefix=f"keeltest:{uuid.uuid4().hex[:8]}:",
        home=tmp_path,
        memory_enabled=False,
        records_pool_timeout_s=2.0,
        checkpoint_pool_timeout_s=2.0,
    )
    job = Job(n=1, user="down-user", role="admin", prefix="down")
    async with Keel.open(settings, model=FakeChatModel([turn] * 10), model_name="fake-model") as keel:
        with pytest.raises(StoreUnavailable, match=f"resume with thread {job.thread_id}"):
            await keel.run(job.task, user_id=job.user, role=job.role, thread_id=job.thread_id)
        throwaway_postgres.wait_restarted()

        out = await keel.resume(job.thread_id)
        assert out.status == "succeeded", out
        # The step in flight (decide) is applied from its saved writes when they reached the database
        # before it went down, else asked again: either way it is reported once, and one email goes out.
        assert out.path == ["decide", "tool", "decide", "finalize"]
        assert calls["n"] in (2, 3)
        outbox = await keel.records.list_outbox(user_id=job.user)
        assert [m.subject for m in outbox] == ["report 1"]
        execution = await keel.records.latest_execution(job.thread_id)
        assert execution.status == "succeeded"
