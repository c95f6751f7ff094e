"""`python -m benchmarks [--record] [overhead] [guards] [memory]`: run benchmarks and print their tables.

With no names it runs `overhead` and `guards`; `memory` (recall latency at 10k/100k memories) takes minutes,
so it runs only when named. Without `--record` nothing is written (`make bench-keel`); with it the run is
appended to `benchmarks/history.json` and `benchmarks/RESULTS.md` is rendered again
(`make bench-keel-record`).
`--render` only re-renders RESULTS.md from the history (after editing a run's notes by hand).
"""

from __future__ import annotations

import argparse
import importlib
import os
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.history import HISTORY, RESULTS, load, parse_section, record, render

BENCHMARKS = {
    "overhead": "benchmarks.overhead",
    "guards": "benchmarks.guards",
    "memory": "benchmarks.memory_recall",
}
DEFAULT = ("overhead", "guards")


def main(argv: list[str], *, history: Path = HISTORY, results: Path = RESULTS) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"any of {', '.join(BENCHMARKS)}")
    parser.add_argument("--record", action="store_true", help="append to history.json, re-render RESULTS.md")
    parser.add_argument("--render", action="store_true", help="only re-render RESULTS.md from history.json")
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    if args.render:
        results.write_text(render(load(history)), encoding="utf-8")
        return
    os.environ.setdefault("KEEL_LOG_LEVEL", "warning")  # the measured runs, not their log lines
    chosen = args.names or list(DEFAULT)
    command = " ".join(
        [".venv/bin/python -m benchmarks", *(["--record"] if args.record else []), *args.names]
    )
    sections = []
    for name in chosen:
        markdown = importlib.import_module(BENCHMARKS[name]).run()
        print(markdown)
        sections.append(parse_section(name, markdown))
    if args.record:
        stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        record(
            {"recorded_at": stamp, "command": command, "sections": sections}, history=history, results=results
        )
        print(f"recorded in {history} and {results}")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
