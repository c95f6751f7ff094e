"""Where one guarded run's time and round trips go: the peer harness's run (fake model, 5 model calls and
4 `echo` tool calls) through keel's plug-in, counted per run and profiled.

    .venv/bin/python -m benchmarks.profile_run [--profile postgres|embedded] [--runs 30] [--pyinstrument]
        [--out FILE.json]

Counts per run: records transactions (BEGINs), records statements, pooled connection checkouts, pings of
pooled connections, Redis round trips (a pipeline or script is one), SQLite worker-thread hops (aiosqlite
calls, records and checkpoints), checkpoints written, and the mean ms per model step. Each count is also
split by the graph node it happened in (LangGraph's `langgraph_node`; a guard edge counts in the node it
leaves): the model-call nodes (plan, decide, fallback), the tool-call nodes (permission_check, approval,
tool) and the rest of the run (recall, finalize, outside the graph), per model call and per tool call.
With `--pyinstrument` it profiles the measured runs (pyinstrument, a dev dependency) and keeps the top
frames (by own time; keel's by the time in them and the libraries they call, and by total time). `--out`
writes all of it as JSON. Numbers only; no assertion is made on them. Without the shared harness
(benchmarks/harness.py) it runs keel's scripted model instead, answering the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from benchmarks.harness import ROOT, load_or_local, model_calls

STEPS = 5
TOOL_CALLS = STEPS - 1
MODEL_NODES = ("plan", "decide", "fallback")
TOOL_NODES = ("permission_check", "approval", "tool")
TOP = 8


class Counts:
    """Round trips seen while `active`, in total and by the graph node they happened in."""

    def __init__(self) -> None:
        self.c: Counter[str] = Counter()
        self.by_node: Counter[tuple[str, str]] = Counter()
        self.active = False

    def hit(self, what: str) -> None:
        if self.active:
            self.c[what] += 1
            self.by_node[(what, _node())] += 1


def _node() -> str:
    """The LangGraph node running in this context ("" outside the graph)."""
    from langchain_core.runnables.config import var_child_runnable_config

    config = var_child_runnable_config.get() or {}
    return str(config.get("metadata", {}).get("langgraph_node", ""))


def _split(counts: Counts, runs: int) -> dict[str, dict[str, float]]:
    """Per count: per model call (model-call nodes), per tool call (tool-call nodes), per run (the rest)."""
    out: dict[str, dict[str, float]] = {}
    for what in sorted(counts.c):
        model = sum(n for (w, node), n in counts.by_node.items() if w == what and node in MODEL_NODES)
        tool = sum(n for (w, node), n in counts.by_node.items() if w == what and node in TOOL_NODES)
        rest = counts.c[what] - model - tool
        out[what] = {
            "per_model_call": round(model / runs / STEPS, 2),
            "per_tool_call": round(tool / runs / TOOL_CALLS, 2),
            "rest_per_run": round(rest / runs, 2),
        }
    return out


def _top_frames(profiler: Any, runs: int) -> dict[str, list[dict[str, Any]]]:
    """The profile's top frames in ms per run: by own time (any code); keel's code by the time spent in it
    and in the libraries it calls directly (each sample charged to its innermost keel frame: where the
    time goes, e.g. the ledger's reserve); keel's code by total time (the outer frames)."""
    root = profiler.last_session.root_frame()
    own: Counter[str] = Counter()
    inner: Counter[str] = Counter()
    total: Counter[str] = Counter()
    stack: list[tuple[Any, frozenset[str], str]] = [(root, frozenset(), "(outside keel)")] if root else []
    while stack:
        frame, above, owner = stack.pop()
        name = f"{frame.function} ({frame.file_path_short}:{frame.line_no})"
        children = [child for child in frame.children if not child.is_synthetic]
        path = frame.file_path or ""
        if path.startswith(str(ROOT)) and "/.venv/" not in path and "/benchmarks/" not in path:
            owner = name
            if name not in above:
                total[name] += frame.time
            above = above | {name}
        exclusive = frame.time - sum(child.time for child in children)
        own[name] += exclusive
        inner[owner] += exclusive
        stack += [(child, above, owner) for child in children]

    def top(counter: Counter[str]) -> list[dict[str, Any]]:
        return [{"frame": k, "ms_per_run": round(v * 1000 / runs, 2)} for k, v in counter.most_common(TOP)]

    return {"keel_innermost": top(inner), "own_time": top(own), "keel_total_time": top(total)}


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


def _write(path: Path, result: dict[str, Any]) -> None:
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


async def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", choices=("postgres", "embedded"), default="postgres")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--pyinstrument", action="store_true", help="profile the runs (pyinstrument)")
    ap.add_argument("--full-profile", action="store_true", help="also print pyinstrument's whole tree")
    ap.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    ap.add_argument("--out", default=None, help="also write the JSON object to this file")
    args = ap.parse_args(argv)

    harness, harness_path = load_or_local()
    if harness_path is None:
        print("profile_run: no shared peer harness; keel's scripted model answers instead", file=sys.stderr)
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
            before = model_calls(model)
            await target.ainvoke(harness.new_input(), cfg)
            if model_calls(model) - before != STEPS:
                raise SystemExit(f"expected {STEPS} model calls, got {model_calls(model) - before}")
            return cfg["configurable"]["thread_id"]

        for _ in range(args.warmup):
            await one()
        profiler = None
        if args.pyinstrument or args.full_profile:
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
    result: dict[str, Any] = {
        "profile": args.profile,
        "runs": args.runs,
        "harness": str(harness_path) if harness_path else None,
        "model_calls_per_run": STEPS,
        "tool_calls_per_run": TOOL_CALLS,
        "ms_per_model_step": round(elapsed * 1000 / args.runs / STEPS, 2),
        "ms_per_run": round(elapsed * 1000 / args.runs, 1),
        "checkpoints_per_run": checkpoints,
        "per_run": per_run,
        "per_model_call": {k: round(v / STEPS, 2) for k, v in per_run.items()},
        "by_step": _split(counts, args.runs),
        "by_node_per_run": {
            f"{what} @ {node or '(outside the graph)'}": round(n / args.runs, 2)
            for (what, node), n in sorted(counts.by_node.items())
        },
    }
    if profiler is not None:
        result["top_frames"] = _top_frames(profiler, args.runs)
    if args.out:
        _write(Path(args.out), result)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"profile\t{args.profile}\nruns\t{args.runs}")
        print(f"ms per model step\t{result['ms_per_model_step']}\nms per run\t{result['ms_per_run']}")
        print(f"checkpoints per run\t{checkpoints}")
        for k, v in per_run.items():
            split = result["by_step"][k]
            print(
                f"{k} per run\t{v}\t(per model call {split['per_model_call']}, per tool call "
                f"{split['per_tool_call']}, rest of the run {split['rest_per_run']})"
            )
        for kind, frames in result.get("top_frames", {}).items():
            print(f"top frames by {kind.replace('_', ' ')} (ms per run):")
            for frame in frames:
                print(f"  {frame['ms_per_run']:8.2f}  {frame['frame']}")
    if profiler is not None and args.full_profile:
        print(profiler.output_text(unicode=False, color=False, show_all=False, timeline=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
