"""The guard path's cost per model call and per tool call: DB transactions, Redis round trips, time.

Each round is one request (plan, a `read_file` call, an answer) with the same fake model, first with
the guards (budget reservations, breakers, rate limits) and then the same graph with them removed.
The embedded profile counts ledger transactions; with `KEEL_BENCH_PG_URL` set to a database of its own
(and Redis on 127.0.0.1:6379) the postgres profile also counts Redis round trips.
Ratios, never timed assertions.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from benchmarks.overhead import _model
from keel.app.backends import open_checkpointer
from keel.app.service import Keel
from keel.graphs.agent import build_graph
from keel.guards import NoGuards, state_guards
from keel.settings import Settings

__all__ = ["run"]

ROUNDS = 30
WARMUP = 3


async def _rounds(settings: Settings, guarded: bool) -> tuple[list[float], dict[str, float]]:
    async with Keel.open(settings, model=_model(ROUNDS + WARMUP), model_name="fake-model") as keel:
        b = keel.backends
        guards = b.guards
        if not guarded:  # the same graph over NoGuards: the run's own limits only, nothing reserved
            b.guards = NoGuards(
                prices=b.prices, models=[n for n, _ in b.models], before_model=state_guards(settings)
            )
            b.executor.guard = b.guards.tools
            async with open_checkpointer(settings) as saver:
                keel = Keel(b, build_graph(b, checkpointer=saver))
                return await _drive(keel, _nothing_counted), {}
        return await _drive(keel, lambda: _counts(guards)), {}


async def _drive(keel: Keel, counts: Callable[[], dict[str, float]]) -> list[float]:
    for _ in range(WARMUP):
        await keel.run("what does the handbook say?", user_id="bench")
    before = counts()
    samples = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        out = await keel.run("what does the handbook say?", user_id="bench")
        samples.append(time.perf_counter() - started)
        assert out.status == "succeeded", out
    after = counts()
    keel.counts = {k: (after[k] - before[k]) / ROUNDS for k in after}  # type: ignore[attr-defined]
    _LAST.clear()
    _LAST.update(keel.counts)  # type: ignore[attr-defined]
    return samples


_LAST: dict[str, float] = {}


def _nothing_counted() -> dict[str, float]:
    """The unguarded round's counters: NoGuards has no ledger and no hot state."""
    return {"db": 0, "redis": 0, "tool": 0}


def _counts(guards) -> dict[str, float]:  # noqa: ANN001
    tool = guards.tools.admission.round_trips
    redis = guards.breakers.round_trips + guards.tools.rates.round_trips + tool
    return {"db": guards.ledger.transactions, "redis": redis, "tool": tool}


async def _profile(settings: Settings) -> tuple[float, float, dict[str, float]]:
    guarded, _ = await _rounds(settings, True)
    counts = dict(_LAST)
    plain, _ = await _rounds(settings, False)
    return statistics.mean(guarded), statistics.mean(plain), counts


def run() -> str:
    """Measure and return a markdown section."""
    lines = [
        "## Guard path cost (budgets, breakers, rate limits)",
        "",
        f"{ROUNDS} requests each (after {WARMUP} warm-up): plan call, decide call asking for `read_file`, "
        "the tool, decide call answering: 3 model calls and 1 tool call per request. Per request: ledger "
        "transactions (reserve + settle per model call; `read_file` is free, so no tool reservation), "
        "hot-state round trips (breaker acquire per model call, the guard edge's breaker read only when this "
        "process has not just seen it closed, and one admission per tool call: the tool's breaker and all "
        "its rate windows in one Lua script).",
        "",
        "| profile | guarded mean ms | unguarded mean ms | ratio | DB transactions / request | "
        "Redis round trips / request | of which the tool-call check |",
        "|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        profiles = [("embedded (SQLite, in-process hot state)", Settings(home=Path(tmp) / "e"))]
        if pg := os.environ.get("KEEL_BENCH_PG_URL"):
            prefix = f"keelbench:{uuid.uuid4().hex[:8]}:"
            profiles.append(
                (
                    "postgres + Redis",
                    Settings(profile="postgres", database_url=pg, home=Path(tmp) / "p", redis_prefix=prefix),
                )
            )
        for name, settings in profiles:
            shared = settings.workspace_root / "shared"
            shared.mkdir(parents=True, exist_ok=True)
            (shared / "handbook.md").write_text("# Handbook\nDeploy on Tuesdays.\n")
            guarded, plain, counts = asyncio.run(_profile(settings))
            pg = "postgres" in name
            redis = f"{counts['redis']:.1f}" if pg else "0 (in-process)"
            tool = f"{counts['tool']:.1f}" if pg else "0 (in-process)"
            lines.append(
                f"| {name} | {guarded * 1e3:.1f} | {plain * 1e3:.1f} | {guarded / plain:.2f}× | "
                f"{counts['db']:.1f} | {redis} | {tool} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(run())
