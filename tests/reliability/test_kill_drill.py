"""Drill: processes killed (os._exit, as kill -9) at chosen points, runs resumed by new processes.

Each worker process (tests/reliability/_worker.py) drives the runs from wherever the last one left
them and dies at one kill point: inside a model call, before / inside / after send_email's outbox
write, around a checkpoint write, or while a run is paused for approval. Then every run must have
ended with each email sent exactly once, every tool result audited, the ledger equal to its
entries and to the executions' recorded costs, and nothing left `running`.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
import warm_python
from _drill import Job, Totals, check, drill_seed, jobs
from _invariants import *  # noqa: F403 - the shared zero-tolerance tests

from keel.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).resolve().parent / "_worker.py"
PG_ADMIN = os.environ.get("KEEL_TEST_PG_ADMIN", "postgresql://127.0.0.1:5432/postgres")
POINTS = (
    "model",
    "tool_before",
    "tool_inside",
    "tool_after",
    "checkpoint_before",
    "checkpoint_after",
    "paused",
    "decided",
)
KILLED = 137


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def drive(
    plan_settings: dict[str, Any], drill_jobs: list[Job], kills: list[dict[str, Any]], totals: Totals
) -> None:
    """Run workers, one per kill in `kills`, then clean ones until every job is done (bounded)."""
    queue = list(kills)
    for _ in range(len(kills) + 3):
        kill = queue.pop(0) if queue else None
        plan = {"settings": plan_settings, "jobs": [j.as_plan() for j in drill_jobs], "kill": kill}
        proc = warm_python.run(
            [sys.executable, str(WORKER), json.dumps(plan)], cwd=ROOT, env=_env(), timeout=120
        )
        events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith('{"drill"')]
        for event in events:
            if event["event"] == "kill":
                totals.notes.append(f"killed at {event['point']}")
            elif event["event"] == "resume":
                totals.resumed += 1
            elif event["event"] == "unhandled":
                totals.unhandled_errors += 1
                totals.notes.append(f"{event['thread']}: unhandled {event['error']}")
            elif event["event"] == "refused":
                totals.notes.append(f"{event['thread']}: refused {event['error']}")
        if proc.returncode == KILLED:
            totals.faults += 1
            continue
        if proc.returncode != 0:
            totals.note("unhandled_errors", f"worker exited {proc.returncode}: {proc.stderr.strip()[-600:]}")
            continue
        if kill is not None:
            totals.notes.append(f"kill point {kill['point']} #{kill['nth']} never reached")
        if not queue:
            return


def _kills(rng: random.Random, points: tuple[str, ...]) -> list[dict[str, Any]]:
    """One kill per point: the approval points first (the runs that pause come early), the rest shuffled."""
    first = [p for p in points if p in ("paused", "decided")]
    rest = [p for p in points if p not in first]
    rng.shuffle(rest)
    return [{"point": p, "nth": 1 if p in first else rng.randint(1, 2)} for p in first + rest]


@contextmanager
def _profile_settings(profile: str, home: Path) -> Iterator[dict[str, Any]]:
    """Worker settings for `profile`; postgres gets a private database on the shared server."""
    base: dict[str, Any] = {"home": str(home), "memory_enabled": False, "log_level": "error"}
    if profile == "embedded":
        yield base
        return
    name = f"keel_drill_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {
            **base,
            "profile": "postgres",
            "database_url": PG_ADMIN.rsplit("/", 1)[0] + f"/{name}",
            "redis_prefix": f"keeldrill:{uuid.uuid4().hex[:10]}:",
        }
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module", params=["embedded", pytest.param("postgres", marks=pytest.mark.postgres)])
async def drill(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Totals:
    """One kill drill per profile (8 runs, a worker killed at each point in turn), checked once."""
    seed = drill_seed(1101)
    rng = random.Random(seed)
    drill_jobs = jobs(8, rng, approval_share=0.5)
    totals = Totals(name=f"kill -9 ({request.param})", seed=seed)
    with _profile_settings(request.param, tmp_path_factory.mktemp("kill")) as settings:
        await asyncio.to_thread(drive, settings, drill_jobs, _kills(rng, POINTS), totals)
        await check(Settings(**settings), drill_jobs, totals)
    print(totals.table())
    return totals


def test_the_drill_killed_and_resumed(drill: Totals) -> None:
    """Not vacuous: every kill point was reached, and killed runs were resumed."""
    assert drill.faults == len(POINTS) and drill.resumed > 0, drill.table()
