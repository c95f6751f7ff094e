"""Where one guarded run's time and round trips go: the peer harness's run (fake model, 5 model calls and
4 `echo` tool calls) through keel's plug-in, counted per run and profiled.

    .venv/bin/python -m benchmarks.profile_run [--profile postgres|embedded] [--runs 30] [--pyinstrument]

Counts per run: records transactions (BEGINs), records statements, pooled connection checkouts, pings of
pooled connections, Redis round trips (a pipeline or script is one), SQLite worker-thread hops (aiosqlite
calls, records and checkpoints), checkpoints written, and the mean ms per model step. With `--pyinstrument`
it prints the profile of the measured runs (pyinstrument, a dev dependency). Numbers only; no assertion is
made on them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import sqlalchemy as sa

HARNESS = Path(__file__).resolve().parents[2] / "shared" / "bench" / "peer_bench.py"
STEPS = 5


def _harness() -> Any:
    """The shared harness module (its fake model and tools), loaded from ../shared/bench."""
    path = Path(os.environ.get("KEEL_PEER_BENCH", HARNESS))
    if not path.exists():
        raise SystemExit(f"the shared peer harness is not at {path} (set KEEL_PEER_BENCH)")
    spec = importlib.util.spec_from_file_location("peer_bench", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["peer_bench"] = module
    spec.loader.exec_module(module)
    return module


class Counts:
    """Round trips seen while `active`."""

    def __init__(self) -> None:
        self.c: Counter[str] = Counter()
        self.active = False

    def hit(self, what: str) -> None:
        if self.active:
            self.c[what] += 1


def _count_engine(engine: Any, counts: Counts) -> None:
    sync = engine.sync_engine
    sa.event.listen(sync, "begin", lambda conn: counts.hit("records transactions"))
    sa.event.listen(sync, "before_cursor_execute", lambda *a: counts.hit("records statements"))
    sa.event.listen(sync.pool, "checkout", lambda *a: counts.hit("records pool checkouts"))
    dialect, ping = sync.dialect, sync.dialect.do_ping

    def do_ping(dbapi_connection: Any) -> bool:
        counts.hit("records pings")
        return ping(dbapi_connection)

    dialect.do_ping = do_ping  # type: ignore[method-assign]


def _count_redis(counts: Counts) -> None:
    from redis.asyncio.connection import AbstractConnection

    original = AbstractConnection.send_packed_command

    async def send(self: Any, *args: Any, **kwargs: Any) -> Any:
        counts.hit("redis round trips")
        return await original(self, *args, **kwargs)

    AbstractConnection.send_packed_command = send  # type: ignore[method-assign]


def _count_sqlite(counts: Counts) -> None:
    import aiosqlite

    original = aiosqlite.Connection._execute

    async def execute(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        counts.hit("sqlite thread hops")
        return await original(self, fn, *args, **kwargs)

    aiosqlite.Connection._execute = execute  # type: ignore[method-assign]


async def _saver(profile: str, stack: contextlib.AsyncExitStack) -> Any:
    if profile == "embedded":
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        path = str(Path(tempfile.mkdtemp(prefix="keel-prof-")) / "checkpoints.sqlite")
        saver = await stack.enter_async_context(AsyncSqliteSaver.from_conn_string(path))
        await saver.setup()
        return saver
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    from benchmarks.peer_target import PG_DSN

    pool = AsyncConnectionPool(
        PG_DSN,
        min_size=4,
        max_size=20,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        open=False,
    )
    await pool.open(wait=True, timeout=10)
    stack.push_async_callback(pool.close)
    saver = AsyncPostgresSaver(pool)
    await saver.setup()
    return saver


async def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", choices=("postgres", "embedded"), default="postgres")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--pyinstrument", action="store_true", help="print a pyinstrument profile of the runs")
    ap.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    args = ap.parse_args(argv)

    harness = _harness()
    from benchmarks import peer_target

    counts = Counts()
    _count_sqlite(counts)
    if args.profile == "postgres":
        _count_redis(counts)
    model = harness.FakeToolCallingModel(steps=STEPS)
    async with contextlib.AsyncExitStack() as stack:
        saver = await _saver(args.profile, stack)
        make = peer_target.make_postgres if args.profile == "postgres" else peer_target.make_embedded
        target = make(saver, model, harness.make_tools())
        _count_engine(target.agent.keel_backends.records.engine, counts)

        async def one() -> str:
            cfg = {"configurable": {"thread_id": uuid.uuid4().hex}, "recursion_limit": 100}
            before = model.calls
            await target.ainvoke(harness.new_input(), cfg)
            if model.calls - before != STEPS:
                raise SystemExit(f"expected {STEPS} model calls, got {model.calls - before}")
            return cfg["configurable"]["thread_id"]

        for _ in range(args.warmup):
            await one()
        profiler = None
        if args.pyinstrument:
            from pyinstrument import Profiler

            profiler = Profiler(async_mode="enabled", interval=0.0005)
            profiler.start()
        counts.active = True
        started = time.perf_counter()
        thread = ""
        for _ in range(args.runs):
            thread = await one()
        elapsed = time.perf_counter() - started
        counts.active = False
        if profiler is not None:
            profiler.stop()
        checkpoints = 0
        async for _ in saver.alist({"configurable": {"thread_id": thread}}):
            checkpoints += 1
        await target.agent.keel_backends.aclose()

    per_run = {k: round(v / args.runs, 2) for k, v in sorted(counts.c.items())}
    result = {
        "profile": args.profile,
        "runs": args.runs,
        "ms_per_model_step": round(elapsed * 1000 / args.runs / STEPS, 2),
        "ms_per_run": round(elapsed * 1000 / args.runs, 1),
        "checkpoints_per_run": checkpoints,
        "per_run": per_run,
        "per_model_call": {k: round(v / STEPS, 2) for k, v in per_run.items()},
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"profile\t{args.profile}\nruns\t{args.runs}")
        print(f"ms per model step\t{result['ms_per_model_step']}\nms per run\t{result['ms_per_run']}")
        print(f"checkpoints per run\t{checkpoints}")
        for k, v in per_run.items():
            print(f"{k} per run\t{v}")
    if profiler is not None:
        print(profiler.output_text(unicode=False, color=False, show_all=False, timeline=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
