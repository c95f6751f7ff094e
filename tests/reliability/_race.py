"""Worker processes started together for the multi-process proofs: each runs a snippet of Python with the
checkout on its path, waits for a common start time, and prints one JSON report."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from asyncio.subprocess import PIPE
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


async def race(code: str, *args: str, workers: int = 4) -> list[Any]:
    """`workers` processes running `code` with `args` and a start time 3 s ahead; what each printed, as
    JSON (a worker that fails fails the test with its stderr)."""
    start_at = time.time() + 3
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, *args, str(start_at), cwd=ROOT, env=env, stdout=PIPE, stderr=PIPE
        )
        for _ in range(workers)
    ]
    reports = []
    for p in procs:
        out, err = await asyncio.wait_for(p.communicate(), timeout=120)
        assert p.returncode == 0, err.decode()[-2000:]
        reports.append(json.loads(out))
    return reports
