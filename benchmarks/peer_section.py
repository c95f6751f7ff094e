"""The "keel vs create_agent (shared peer harness)" section of RESULTS.md, from the harness's JSON output.

`../shared/bench/peer_bench.py --target benchmarks.peer_target:make_postgres` (and `:make_embedded`) write
every figure to a JSON file; this turns the files into one section (figures copied, never retyped) and,
with `--record`, appends it to history.json and re-renders RESULTS.md:

    .venv/bin/python -m benchmarks.peer_section --record postgres=benchmarks/peer-quick.json \
        embedded=benchmarks/peer-embedded-quick.json
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.history import parse_section, record

__all__ = ["section"]

TITLE = "keel vs create_agent (shared peer harness)"
DESCRIPTION = (
    "`../shared/bench/peer_bench.py` runs LangChain's `create_agent` (the peer) and keel's full guarded "
    "graph (`benchmarks/peer_target.py`, built by `keel.create_guarded_agent`) in one process, interleaved, "
    "over the same fake model (no latency; 5 model calls, 4 `echo` tool calls a run), tools and "
    "checkpointer. Ratios are keel / create_agent; only ratios from one run count. keel's extra work per "
    "run: the execution record, a permission decision and audit rows per tool call, the tool-result row, a "
    "budget reservation and settlement per model call (the fake model is priced in "
    "`benchmarks/peer_prices.yaml`), breaker and rate-limit checks (in Redis on the postgres profile), the "
    "output filter, and, with a checkpointer, durability `sync` whatever the row says (exactly-once resume "
    "needs it). Off: the plan call and long-term memory. `bare`: no checkpointer for either; keel still "
    "writes its records. Concurrency: 200 runs in flight, the model sleeps 20 ms a call."
)
COLUMNS = [
    "run",
    "scenario",
    "keel",
    "create_agent",
    "keel / create_agent",
    "p95 ratio",
    "checkpoints/run",
]


def _seq_rows(profile: str, res: dict[str, Any]) -> list[list[str]]:
    rows = []
    tvp = res.get("target_vs_peer", {}).get("sequential", {})
    for name, ratio in tvp.items():
        keel, peer = res["sequential"]["target"][name], res["sequential"]["peer"][name]
        rows.append(
            [
                profile,
                name,
                f"{keel['median_ms_per_step']:.2f} ms/step",
                f"{peer['median_ms_per_step']:.2f} ms/step",
                f"{ratio['median_ratio']:.2f}×",
                f"{ratio['p95_ratio']:.2f}×",
                f"{keel.get('checkpoints_per_run', '-')} vs {peer.get('checkpoints_per_run', '-')}",
            ]
        )
    return rows


def _conc_rows(profile: str, res: dict[str, Any]) -> list[list[str]]:
    rows = []
    tvp = res.get("target_vs_peer", {}).get("concurrency", {})
    for name, ratio in tvp.items():
        keel, peer = res["concurrency"]["target"][name], res["concurrency"]["peer"][name]
        rows.append(
            [
                profile,
                f"concurrency {name}",
                f"{keel['runs_per_s_median']:.1f} runs/s",
                f"{peer['runs_per_s_median']:.1f} runs/s",
                f"{ratio['throughput_ratio']:.3f}× throughput",
                f"{ratio['p95_latency_ratio']:.1f}× p95 latency",
                "",
            ]
        )
    return rows


def section(results: dict[str, dict[str, Any]]) -> str:
    """The markdown section for the harness results, by run label (keel's profile and the run's kind)."""
    rows = []
    for profile, res in results.items():
        rows += _seq_rows(profile, res) + _conc_rows(profile, res)
    lines = [f"## {TITLE}", "", DESCRIPTION, "", "| " + " | ".join(COLUMNS) + " |"]
    lines.append("|" + "---|" * len(COLUMNS))
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", "Harness runs: " + "; ".join(_meta(p, r) for p, r in results.items()) + "."]
    return "\n".join(lines) + "\n"


def _meta(profile: str, res: dict[str, Any]) -> str:
    meta, load = res["meta"], res["meta"]["machine"].get("loadavg_at_start") or []
    return (
        f"{profile} started {meta['started_utc']}, {meta['elapsed_s']:.0f} s, "
        f"load average at start {', '.join(f'{x:.2f}' for x in load)} on {meta['machine']['nproc']} cores"
    )


def _command(harness: str, res: dict[str, Any]) -> str:
    return f"{harness} " + " ".join(res["meta"]["argv"])


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.peer_section")
    parser.add_argument(
        "runs", nargs="+", metavar="LABEL=JSON", help="a harness run: its label and JSON file"
    )
    parser.add_argument("--record", action="store_true", help="append to history.json, re-render RESULTS.md")
    parser.add_argument("--notes", default=None, help="notes on this run, shown under the table")
    parser.add_argument(
        "--harness",
        default=".venv/bin/python ../shared/bench/peer_bench.py",
        help="how the harness was started (its arguments come from the JSON)",
    )
    args = parser.parse_args(argv)
    results = {}
    for run in args.runs:
        label, sep, path = run.partition("=")
        if not sep:
            parser.error(f"{run!r}: give LABEL=JSON, e.g. postgres=benchmarks/peer-quick.json")
        results[label] = json.loads(Path(path).read_text(encoding="utf-8"))
    markdown = section(results)
    print(markdown)
    if args.record:
        run: dict[str, Any] = {
            "recorded_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "command": " ; ".join(_command(args.harness, r) for r in results.values()),
            "sections": [parse_section("peer", markdown)],
        }
        if args.notes:
            run["notes"] = args.notes
        record(run)
        print("recorded in benchmarks/history.json and benchmarks/RESULTS.md")


if __name__ == "__main__":
    main(sys.argv[1:])
