"""Cold start: wall time of `keel --help` and of an offline `keel run`, each a fresh subprocess.

    .venv/bin/python -m benchmarks.coldstart [--repeat 5] [--out FILE.json]

Best of `--repeat` wall times (the least disturbed by the machine's other load) and all of them. The
offline run is `keel run` on the shipped defaults (embedded profile, the offline scripted model, long-term
memory on) in a fresh KEEL_HOME, after one untimed run that creates its databases, so the timed runs
measure imports and one run, not the first-time set-up. Numbers only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["measure"]

KEEL = Path(sys.executable).with_name("keel")
TASK = "Say hello."
TOP = 8


def _wall(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        tail = done.stderr.strip()[-300:]
        raise SystemExit(f"coldstart: {' '.join(argv)} exited {done.returncode}: {tail}")
    return wall


def _imports(argv: list[str], env: dict[str, str]) -> list[dict[str, Any]]:
    """One untimed run (it creates the home's databases) with `-X importtime`: the top-level imports by
    cumulative time, slowest first (the profile of a cold start)."""
    done = subprocess.run(argv, env={**env, "PYTHONPROFILEIMPORTTIME": "1"}, capture_output=True, text=True)
    tops: dict[str, int] = {}
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            _self, cumulative, name = line.removeprefix("import time:").split("|")
            if cumulative.strip().isdigit() and not name.startswith("  "):
                tops[name.strip()] = max(tops.get(name.strip(), 0), int(cumulative))
    slowest = sorted(tops.items(), key=lambda kv: -kv[1])[:TOP]
    return [{"module": name, "cumulative_s": round(us / 1e6, 3)} for name, us in slowest]


def measure(repeat: int) -> dict[str, Any]:
    """{"keel --help": {...}, "keel run (offline)": {...}}: best and all wall times in seconds."""
    home = tempfile.mkdtemp(prefix="keel-coldstart-")
    env = {**os.environ, "KEEL_HOME": home, "KEEL_LOG_LEVEL": "warning"}
    env.pop("KEEL_CONFIG", None)
    commands = {
        "keel --help": [str(KEEL), "--help"],
        "keel run (offline)": [str(KEEL), "run", TASK, "--user", "coldstart", "--json"],
    }
    out: dict[str, Any] = {"slowest_imports": _imports(commands["keel run (offline)"], env)}
    for name, argv in commands.items():
        walls = [_wall(argv, env) for _ in range(repeat)]
        out[name] = {"best_s": round(min(walls), 3), "walls_s": [round(w, 3) for w in walls]}
        out[name]["argv"] = argv[1:]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", default=None, help="write the JSON object to this file")
    args = ap.parse_args(argv)
    result = {"repeat": args.repeat, "loadavg_at_start": os.getloadavg(), **measure(args.repeat)}
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
