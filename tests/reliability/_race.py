"""Worker processes started together for the multi-process proofs: each runs a snippet of Python with the
checkout on its path, prints `ready` once connected, waits for the start line on its stdin (sent to all of
them once every one is ready), and prints one JSON report."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from asyncio.subprocess import PIPE
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


async def race(code: str, *args: str, workers: int = 4) -> list[Any]:
    """`workers` processes running `code` with `args`, released together; what each printed last, as JSON
    (a worker that fails fails the test with its stderr)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, *args, cwd=ROOT, env=env, stdin=PIPE, stdout=PIPE, stderr=PIPE
        )
        for _ in range(workers)
    ]
    for p in procs:
        if (await asyncio.wait_for(p.stdout.readline(), timeout=120)).strip() != b"ready":
            _, err = await asyncio.wait_for(p.communicate(), timeout=120)
            raise AssertionError(f"worker exited {p.returncode} before its start: {err.decode()[-2000:]}")
    for p in procs:
        p.stdin.write(b"go\n")
    await asyncio.gather(*(p.stdin.drain() for p in procs))
    reports = []
    for p in procs:
        out, err = await asyncio.wait_for(p.communicate(), timeout=120)
        assert p.returncode == 0, err.decode()[-2000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))
    return reports
