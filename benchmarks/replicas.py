"""Replica scaling: 1, then 2 worker processes running keel's postgres profile over ONE PostgreSQL and Redis.

    .venv/bin/python -m benchmarks.replicas [--runs 200] [--inflight 50] [--sleep-ms 20] [--out FILE.json]

Each worker is a subprocess building `benchmarks.peer_target.make_postgres` over its own
AsyncPostgresSaver pool, with the shared harness's fake model (5 model calls a run, each sleeping
`--sleep-ms`; keel's scripted stand-in when the harness is absent); every worker keeps `--inflight` runs
in flight, and the workers split `--runs` between them (the same total for 1 and 2 replicas). The workers
import, warm up and report ready; then all start together and the clock runs until the last finishes.

Per replica count: runs/s (total runs / that wall), p50 and p95 run latency, the CPU seconds each worker
used while measured (its own getrusage), the machine's busy CPU over the phase (/proc/stat), the runs'
outcomes, and the lock waits: every 100 ms `pg_stat_activity` joined with the ungranted `pg_locks` of the
workers' connections (application_name `keel-replica`), as how many samples saw a wait and on what.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

__all__ = ["measure", "section"]

STEPS = 5
APP = "keel-replica"
SAMPLE_S = 0.1
LOCK_WAITS = """
SELECT l.locktype, l.mode, l.relation::regclass::text AS relation, l.classid, l.objid, l.objsubid,
       left(a.query, 60) AS query
FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid AND NOT l.granted
WHERE a.wait_event_type = 'Lock' AND a.application_name = %s
"""


def _dsn(base: str) -> str:
    """The bench DSN with the workers' application_name (how the sampler tells their connections)."""
    parts = urlsplit(base)
    query = "&".join(q for q in (parts.query, urlencode({"application_name": APP})) if q)
    return urlunsplit(parts._replace(query=query))


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    k = (len(s) - 1) * q / 100.0
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


# ------------------------------------------------------------------------------------------ the worker
async def _worker(runs: int, inflight: int, sleep_s: float) -> None:
    """One replica: build, warm up, say "ready", wait for "go", run, print one JSON line."""
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    from benchmarks import peer_target
    from benchmarks.harness import load_or_local, model_calls

    harness, _ = load_or_local()
    model = harness.FakeToolCallingModel(steps=STEPS, sleep_s=sleep_s)
    pool = AsyncConnectionPool(
        peer_target.PG_DSN,
        min_size=4,
        max_size=20,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
        open=False,
    )
    await pool.open(wait=True, timeout=30)
    saver = AsyncPostgresSaver(pool)
    await saver.setup()
    target = peer_target.make_postgres(saver, model, harness.make_tools())
    gate = asyncio.Semaphore(inflight)
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()

    async def one() -> None:
        async with gate:
            started = time.perf_counter()
            out = await target.ainvoke(
                harness.new_input(),
                {"configurable": {"thread_id": uuid.uuid4().hex}, "recursion_limit": 100},
            )
            latencies.append((time.perf_counter() - started) * 1000)
            reason = out.get("terminated_reason")
            outcomes[str(out.get("status")) + (f":{reason}" if reason else "")] += 1

    await asyncio.gather(*(one() for _ in range(min(10, runs))))  # warm-up
    latencies.clear()
    outcomes.clear()
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    before_calls, cpu0 = model_calls(model), resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(runs)))
    wall = time.perf_counter() - started
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    calls = model_calls(model) - before_calls
    await target.agent.keel_backends.aclose()
    await pool.close()
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    print(
        json.dumps(
            {
                "runs": runs,
                "wall_s": wall,
                "cpu_s": round(cpu, 3),
                "model_calls": calls,
                "latencies_ms": latencies,
                "outcomes": dict(outcomes),
            }
        ),
        flush=True,
    )


# ------------------------------------------------------------------------------------------ the parent
def _cpu_busy() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


class _Sampler(threading.Thread):
    """Every SAMPLE_S: the workers' connections waiting on a lock, and on which."""

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        self.dsn, self.stop = dsn, threading.Event()
        self.samples, self.waiting = 0, 0
        self.on: Counter[str] = Counter()

    def run(self) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stop.is_set():
                rows = conn.execute(LOCK_WAITS, (APP,)).fetchall()
                self.samples += 1
                if rows:
                    self.waiting += 1
                    for locktype, mode, relation, classid, objid, _sub, query in rows:
                        what = relation or (f"advisory {classid}:{objid}" if locktype == "advisory" else "")
                        self.on[f"{locktype} {mode} {what} ({' '.join(query.split())})".strip()] += 1
                self.stop.wait(SAMPLE_S)


def _phase(replicas: int, args: argparse.Namespace, dsn: str) -> dict[str, Any]:
    from benchmarks.peer_target import RECORDS_DSN

    env = {**os.environ, "BENCH_PG_DSN": _dsn(dsn), "KEEL_LOG_LEVEL": "warning"}
    env["KEEL_BENCH_RECORDS_DSN"] = _dsn(RECORDS_DSN)
    share = [args.runs // replicas + (i < args.runs % replicas) for i in range(replicas)]
    argv = [sys.executable, "-m", "benchmarks.replicas", "--worker", "--inflight", str(args.inflight)]
    argv += ["--sleep-ms", str(args.sleep_ms)]
    workers = [
        subprocess.Popen(
            [*argv, "--runs", str(n)], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for n in share
    ]
    try:
        for w in workers:
            line = w.stdout.readline() if w.stdout else ""
            if line.strip() != "ready":
                raise SystemExit(f"replicas: a worker failed to start (exit {w.wait()})")
        sampler = _Sampler(RECORDS_DSN)  # pg_locks' relations resolve to names in the records database
        sampler.start()
        busy0 = _cpu_busy()
        started = time.perf_counter()
        for w in workers:
            assert w.stdin is not None
            w.stdin.write("go\n")
            w.stdin.flush()
        results = []
        for w in workers:
            line = w.stdout.readline() if w.stdout else ""
            if not line.strip():
                raise SystemExit(f"replicas: a worker failed while measured (exit {w.wait()})")
            results.append(json.loads(line))
        wall = time.perf_counter() - started
        busy1 = _cpu_busy()
        sampler.stop.set()
        sampler.join()
        for w in workers:
            w.wait(timeout=60)
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
            w.wait()
    latencies = [ms for r in results for ms in r["latencies_ms"]]
    calls = sum(r["model_calls"] for r in results)
    if calls != args.runs * STEPS:
        raise SystemExit(f"replicas: expected {args.runs * STEPS} model calls, got {calls}")
    outcomes: Counter[str] = Counter()
    for r in results:
        outcomes.update(r["outcomes"])
    return {
        "replicas": replicas,
        "runs": args.runs,
        "wall_s": round(wall, 3),
        "runs_per_s": round(args.runs / wall, 2),
        "p50_ms": round(statistics.median(latencies), 1),
        "p95_ms": round(_pct(latencies, 95), 1),
        "cpu_s_per_worker": [r["cpu_s"] for r in results],
        "machine_cpu_busy": round((busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1]), 3),
        "outcomes": dict(outcomes),
        "lock_samples": sampler.samples,
        "lock_wait_samples": sampler.waiting,
        "lock_waits_on": dict(sampler.on.most_common(10)),
    }


def measure(args: argparse.Namespace, dsn: str) -> dict[str, Any]:
    """Both phases, one replica then two, and the ratio of their throughput."""
    phases = [_phase(n, args, dsn) for n in (1, 2)]
    return {
        "params": {"runs": args.runs, "inflight_per_worker": args.inflight, "sleep_ms": args.sleep_ms},
        "nproc": os.cpu_count(),
        "loadavg_at_start": os.getloadavg(),
        "phases": phases,
        "throughput_ratio_2_vs_1": round(phases[1]["runs_per_s"] / phases[0]["runs_per_s"], 3),
    }


def section(result: dict[str, Any]) -> str:
    """The RESULTS.md section: one row per replica count, figures copied from `measure`'s result."""
    params = result["params"]
    lines = [
        "## Replicas: 1 and 2 worker processes over one PostgreSQL and Redis",
        "",
        f"`benchmarks/replicas.py`: keel's postgres profile (benchmarks.peer_target.make_postgres) in "
        f"each worker process, {params['inflight_per_worker']} runs in flight per worker, {params['runs']} "
        f"runs in all split between the workers, 5 model calls a run, the model sleeping "
        f"{params['sleep_ms']:g} ms a call, on {result['nproc']} cores. CPU: each worker's own seconds "
        "while measured, and the whole machine's busy share (PostgreSQL, Redis and the other load "
        "included). Lock waits: samples every 100 ms of `pg_stat_activity` (wait_event_type `Lock`) "
        "joined with the ungranted `pg_locks` of the workers' connections; the waiters are counted by "
        "lock and statement.",
        "",
        "| replicas | runs/s | p50 run s | p95 run s | worker CPU s | machine CPU busy | samples with a lock "
        "wait | waiters on |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for phase in result["phases"]:
        on = "; ".join(f"{what}: {n}" for what, n in phase["lock_waits_on"].items()) or "none"
        cells = [
            str(phase["replicas"]),
            f"{phase['runs_per_s']:.1f}",
            f"{phase['p50_ms'] / 1000:.2f}",
            f"{phase['p95_ms'] / 1000:.2f}",
            " + ".join(f"{c:.1f}" for c in phase["cpu_s_per_worker"]),
            f"{phase['machine_cpu_busy']:.0%}",
            f"{phase['lock_wait_samples']} of {phase['lock_samples']}",
            on.replace("|", "/"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Throughput, 2 replicas / 1: {result['throughput_ratio_2_vs_1']:.2f}×."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=200, help="total runs per replica count")
    ap.add_argument("--inflight", type=int, default=50, help="runs in flight in each worker")
    ap.add_argument("--sleep-ms", type=float, default=20.0, help="the fake model's latency per call")
    ap.add_argument("--out", default=None, help="write the JSON object to this file")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        asyncio.run(_worker(args.runs, args.inflight, args.sleep_ms / 1000))
        return 0
    from benchmarks.peer_target import PG_DSN

    result = measure(args, PG_DSN)
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
