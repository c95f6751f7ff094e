"""Proof that the ledger's row lock is what stops four processes overdrawing one user's budget.

Each reservation here is exactly what is then charged (unlike a model call, whose bound is far above its
cost), so any two reservations that both read the same remaining budget overdraw it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from asyncio.subprocess import PIPE
from decimal import Decimal
from pathlib import Path

import pytest

from keel.budget import BudgetLedger
from keel.records import Records

pytestmark = [pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 4
PRICE = Decimal("0.001")
CALLS_THAT_FIT = 40

_WORKER = r"""
import asyncio, json, sys, time
from decimal import Decimal
from keel.budget import BudgetExceeded, BudgetLedger
from keel.records import Records

db, user, start_at = sys.argv[1], sys.argv[2], float(sys.argv[3])

async def main():
    records = Records.from_url(db)
    ledger = BudgetLedger(records, default_usd=0)
    await ledger.status(user)  # connect before the start line
    time.sleep(max(0.0, start_at - time.time()))
    charged = 0
    while True:
        try:
            res = await ledger.reserve(user_id=user, thread_id="t", execution_id="e", kind="tool",
                                       name="send_email", estimate=Decimal("0.001"))
        except BudgetExceeded:
            break
        await ledger.settle(res, Decimal("0.001"))
        charged += 1
    await records.close()
    print(json.dumps(charged))

asyncio.run(main())
"""


async def test_four_processes_charging_their_full_reservation_never_overdraw(pg_url: str) -> None:
    user = f"u{uuid.uuid4().hex[:8]}"
    records = Records.from_url(pg_url)
    await records.setup()
    ledger = BudgetLedger(records, default_usd=0)
    await ledger.set_limit(user, PRICE * CALLS_THAT_FIT)
    start_at = time.time() + 3
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _WORKER,
            pg_url,
            user,
            str(start_at),
            cwd=ROOT,
            env=env,
            stdout=PIPE,
            stderr=PIPE,
        )
        for _ in range(WORKERS)
    ]
    charged = []
    for p in procs:
        out, err = await asyncio.wait_for(p.communicate(), timeout=120)
        assert p.returncode == 0, err.decode()[-2000:]
        charged.append(json.loads(out))
    status = await ledger.status(user)
    await records.close()
    assert sum(charged) == CALLS_THAT_FIT
    assert status.spent == PRICE * CALLS_THAT_FIT and status.reserved == 0
