"""kill -9 around the memory writer: a run's memory, committed with its execution, is never lost.

A process runs once with long-term memory on and dies (SIGKILL) either before its memory writer ran, or as
the writer starts the Chroma write of the row it claimed. The queued row is still there; a new process's
writer (once the dead one's lease has passed) writes the memory to Chroma and deletes the row.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import warm_python

from keel.app.service import Keel
from keel.memory.types import MemoryScope
from keel.records import Records
from keel.records.types import utcnow
from keel.settings import Settings
from keel.testing.fake_model import FakeChatModel

WORKER = Path(__file__).resolve().parent / "_memory_worker.py"
TASK = "when do we deploy according to the handbook?"


def _plan(settings: Settings, user: str, kill: str) -> dict[str, Any]:
    values: dict[str, Any] = {
        "home": str(settings.home),
        "profile": settings.profile,
        "embeddings": "hashing",
        "memory_queue_lease_s": 1.0,
        "log_level": "error",
    }
    if settings.profile == "postgres":
        values.update(database_url=settings.database_url, redis_prefix=settings.redis_prefix)
    return {"settings": values, "user": user, "task": TASK, "kill": kill}


def _worker(plan: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return warm_python.run([sys.executable, str(WORKER), json.dumps(plan)], timeout=120)


@pytest.mark.parametrize(
    ("kill", "profile"),
    [("before_writer", "embedded"), ("writing", "embedded"), pytest.param("writing", "postgres")],
)
async def test_a_killed_process_leaves_the_memory_queued_and_the_next_one_writes_it(
    settings: Settings, kill: str, profile: str
) -> None:
    if settings.profile != profile:
        pytest.skip(f"this drill runs on the {profile} profile")
    user = f"mem-{uuid.uuid4().hex[:10]}"
    child = _worker(_plan(settings, user, kill))
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]

    settings = settings.model_copy(update={"embeddings": "hashing"})
    records = Records.from_url(settings.records_url)
    try:
        [execution] = await records.list_executions(user_id=user)
        assert execution.status == "succeeded"  # finalize committed ...
        [row] = await records.queued_memory(user_id=user)  # ... and the memory with it
        assert row.execution_id == execution.execution_id and row.task == TASK
        assert (row.claimed_until is not None) == (kill == "writing")
        if row.claimed_until is not None:  # the dead writer's lease: the next writer waits it out
            await asyncio.sleep(max(0.0, (row.claimed_until - utcnow()).total_seconds()) + 0.05)
    finally:
        await records.close()

    async with Keel.open(settings, model=FakeChatModel(["unused"]), model_name="fake-model") as keel:
        ltm = keel.backends.memory.long_term
        scope = MemoryScope(user_id=user)
        deadline = time.monotonic() + 10  # the writer's task starts with the keel and claims the row
        while await keel.records.queued_memory(user_id=user):
            assert time.monotonic() < deadline, "the new process's memory writer did not write the row"
            await asyncio.sleep(0.02)
        [memory] = await ltm.list(scope)
        assert memory.metadata["execution_id"] == execution.execution_id
        assert "Asked: when do we deploy" in memory.text and "Deploys happen on Tuesdays." in memory.text
