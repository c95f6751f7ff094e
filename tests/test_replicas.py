"""Guards across replicas: 4 worker processes over one PostgreSQL and one Redis.

Budget: 50 concurrent runs of one user; the ledger never overdraws and equals the recorded costs.
Rate limit: N calls per window in total across the workers. Breaker: opened by one worker, open in
all; after the recovery timeout exactly one probe goes through, whichever worker asks.

The workers start together: each says `ready` once imported and connected, then waits on its stdin for the
line that lets them all go at once (no fixed head start that slower machines would have to outwait).
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from keel.budget import BudgetLedger
from keel.records import Records

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
REDIS = "redis://127.0.0.1:6379/0"
WORKERS = 4
RECOVERY_S = 3.0
"""The breaker's recovery timeout: the workers ask while it runs, then all at once after it."""

_WORKER = r"""
import asyncio, json, sys, time
from keel.settings import Settings
mode, args = sys.argv[1], json.loads(sys.argv[2])

async def wait_for(word):
    print("ready" if word == "go" else f"ready-{word}", flush=True)
    line = await asyncio.to_thread(sys.stdin.readline)
    assert line.strip() == word, line

async def runs():
    from keel.app.service import Keel
    from keel.testing.fake_model import FakeChatModel
    s = Settings(profile="postgres", database_url=args["db"], home=args["home"], redis_prefix=args["prefix"],
                 max_output_tokens=5)
    model = FakeChatModel(["ok"] * args["runs"], usage=(300, 5))
    async with Keel.open(s, model=model, model_name="fake-model") as keel:
        await wait_for("go")
        outs = await asyncio.gather(*[keel.run("hi", user_id=args["user"]) for _ in range(args["runs"])])
    return [o.terminated_reason or o.status for o in outs]

async def rate():
    from limits import parse
    from keel.hotstate import BreakerConfig, RateHit, RedisAdmission, RedisRateWindows, redis_client
    rates = RedisRateWindows(args["redis"], prefix=args["prefix"])
    admission = RedisAdmission(redis_client(args["redis"]), args["redis"], prefix=args["prefix"])
    cfg = BreakerConfig(failure_threshold=3, recovery_s=10)
    hits = [RateHit(scope="per_tool", item=parse(args["limit"]), key=("tool", "send_sms")),
            RateHit(scope="per_user", item=parse("9/minute"), key=("user", "ann", "send_sms"))]
    await wait_for("go")
    got = await asyncio.gather(*[rates.hit(parse(args["limit"]), "tool", "send_email") for _ in range(10)])
    admitted = await asyncio.gather(*[admission.admit("tool:send_sms", cfg, hits) for _ in range(10)])
    return [sum(g.allowed for g in got), sum(a.allowed for a in admitted), admission.round_trips]

async def breaker():
    from keel.hotstate import BreakerConfig, RedisBreakers, redis_client
    cfg = BreakerConfig(failure_threshold=3, recovery_s=args["recovery"])
    b = RedisBreakers(redis_client(args["redis"]), args["redis"], prefix=args["prefix"])
    if args["fail"]:
        await wait_for("go")
        for _ in range(3):
            await b.record("model:fake-model", cfg, ok=False, probe=False)
        return "opened"
    await wait_for("check")  # once the breaker was opened by the other worker
    seen = (await b.acquire("model:fake-model", cfg)).allowed
    await wait_for("go")  # past the recovery timeout
    got = await asyncio.gather(*[b.acquire("model:fake-model", cfg) for _ in range(5)])
    return {"allowed_while_open": seen, "probes": sum(d.probe and d.allowed for d in got)}

print(json.dumps(asyncio.run({"runs": runs, "rate": rate, "breaker": breaker}[mode]())))
"""


_SPAWNED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_worker_outlives_its_test() -> Iterator[None]:
    """A test that failed (or timed out) kills its workers, so none holds a lock the next test waits on."""
    yield
    while _SPAWNED:
        proc = _SPAWNED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


class _Worker:
    """One worker process; its stdout lines are read as they come (`ready…` lines, then one JSON result)."""

    def __init__(self, mode: str, **args) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER, mode, json.dumps(args)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        _SPAWNED.append(self.proc)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def _next(self) -> str:
        try:
            line = self.lines.get(timeout=150)
        except queue.Empty:
            self.proc.kill()
            line = None
        if line is None:
            self.proc.wait(timeout=30)
            raise AssertionError(f"worker failed with {self.proc.returncode}: {''.join(self.stderr)[-2000:]}")
        return line

    def expect(self, line: str) -> None:
        assert (got := self._next()) == line, got

    def send(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def result(self):
        out = self._next()
        assert self.proc.wait(timeout=150) == 0, f"worker failed: {''.join(self.stderr)[-2000:]}"
        return json.loads(out)


def _together(workers: list[_Worker], word: str = "go") -> None:
    """Wait until every worker is ready for `word`, then send it to all of them at once."""
    for w in workers:
        w.expect("ready" if word == "go" else f"ready-{word}")
    for w in workers:
        w.send(word)


def _results(workers: list[_Worker]) -> list:
    return [w.result() for w in workers]


def _prefix() -> str:
    return f"keeltest:{uuid.uuid4().hex[:10]}:"


async def test_fifty_concurrent_runs_of_one_user_never_overdraw_the_budget(
    pg_url: str, tmp_path: Path
) -> None:
    user, budget = f"u{uuid.uuid4().hex[:8]}", Decimal("0.02")
    records = Records.from_url(pg_url)
    await records.setup()
    ledger = BudgetLedger(records, default_usd=0)
    await ledger.set_limit(user, budget)
    args = {"db": pg_url, "prefix": _prefix(), "user": user}
    workers = [
        _Worker("runs", home=str(tmp_path / f"w{i}"), runs=[13, 13, 12, 12][i], **args) for i in range(4)
    ]
    _together(workers)
    endings = [e for out in _results(workers) for e in out]
    assert len(endings) == 50
    assert "succeeded" in endings and "budget_exceeded" in endings
    executions = await records.list_executions(user_id=user, limit=1000)
    unexpected = [
        (e.terminated_reason, e.error)
        for e in executions
        if e.terminated_reason not in (None, "budget_exceeded")
    ]
    assert set(endings) <= {"succeeded", "budget_exceeded"}, unexpected
    status = await ledger.status(user)
    entries = await ledger.history(user, limit=1000)
    settled = sum((e.actual for e in entries if e.status == "settled"), Decimal(0))
    executions = await records.list_executions(user_id=user, limit=1000)
    assert status.reserved == 0 and status.spent <= budget
    assert status.spent == settled == sum((e.cost for e in executions), Decimal(0))
    assert status.spent.quantize(Decimal("0.01")) == settled.quantize(Decimal("0.01"))
    assert status.spent == Decimal("0.00031") * sum(e.status == "settled" for e in entries)
    await records.close()


def test_a_rate_limit_holds_globally_across_workers() -> None:
    args = {"redis": REDIS, "prefix": _prefix(), "limit": "7/minute"}
    workers = [_Worker("rate", **args) for _ in range(WORKERS)]
    _together(workers)
    outs = _results(workers)
    assert sum(o[0] for o in outs) == 7, "40 attempts from 4 processes, 7 allowed in the window"
    assert sum(o[1] for o in outs) == 7, "tool-call admissions (breaker + 2 windows) hold the same limit"
    assert [o[2] for o in outs] == [10] * WORKERS, "one Redis round trip per tool-call check"


def test_a_breaker_opened_in_one_worker_is_open_in_all_and_lets_exactly_one_probe() -> None:
    common = {"redis": REDIS, "prefix": _prefix(), "recovery": RECOVERY_S}
    opener = _Worker("breaker", fail=True, **common)
    workers = [_Worker("breaker", fail=False, **common) for _ in range(WORKERS)]
    _together([opener])
    assert _results([opener]) == ["opened"]
    opened = time.monotonic()
    _together(workers, "check")  # each asks once, while the breaker is open
    time.sleep(max(0.0, opened + RECOVERY_S + 0.5 - time.monotonic()))
    _together(workers)  # past the recovery timeout, all workers ask at once
    outs = _results(workers)
    assert [o["allowed_while_open"] for o in outs] == [False] * WORKERS
    assert sum(o["probes"] for o in outs) == 1
