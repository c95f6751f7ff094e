"""`python -m benchmarks [overhead] [guards] [memory]`: run benchmarks, append results with the command.

With no names it runs `overhead` and `guards`; `memory` (recall latency at 10k/100k memories) takes minutes,
so it runs only when named.
"""

from __future__ import annotations

import importlib
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
BENCHMARKS = {
    "overhead": "benchmarks.overhead",
    "guards": "benchmarks.guards",
    "memory": "benchmarks.memory_recall",
}
DEFAULT = ("overhead", "guards")


def main(argv: list[str]) -> None:
    os.environ.setdefault("KEEL_LOG_LEVEL", "warning")  # the measured runs, not their log lines
    unknown = [name for name in argv if name not in BENCHMARKS]
    if unknown:
        sys.exit(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    chosen = argv or list(DEFAULT)
    sections = [importlib.import_module(BENCHMARKS[name]).run() for name in chosen]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = " ".join([".venv/bin/python -m benchmarks", *argv])
    text = f"\n# {stamp}: `{command}`\n\n" + "\n".join(sections)
    with RESULTS.open("a", encoding="utf-8") as fh:
        fh.write(text)
    print(text)


if __name__ == "__main__":
    main(sys.argv[1:])
