"""Proof that the ledger's conditional reservation is what stops four processes overdrawing a user's budget.

Each reservation here is exactly what is then charged (unlike a model call, whose bound is far above its
cost), and each user's budget fits exactly one call: four processes race for every user in turn, so any
two reservations that read the same remaining budget overdraw it.
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from _race import race

from keel.budget import BudgetLedger
from keel.records import Records

pytestmark = [pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 4
PRICE = Decimal("0.001")
USERS = 40

_WORKER = r"""
import asyncio, json, sys, time
from decimal import Decimal
from keel.budget import BudgetExceeded, BudgetLedger
from keel.records import Records

db, users = sys.argv[1], json.loads(sys.argv[2])

async def main():
    records = Records.from_url(db)
    ledger = BudgetLedger(records, default_usd=0)
    await ledger.status(users[0])  # connect before the start line
    print("ready", flush=True)
    sys.stdin.readline()  # the start line, given once every worker is ready
    charged = 0
    for user in users:
        try:
            res = await ledger.reserve(user_id=user, thread_id="t", execution_id="e", kind="tool",
                                       name="send_email", estimate=Decimal("0.001"))
        except BudgetExceeded:
            continue
        await ledger.settle(res, Decimal("0.001"))
        charged += 1
    await records.close()
    print(json.dumps(charged))

asyncio.run(main())
"""


async def test_four_processes_charging_their_full_reservation_never_overdraw(pg_url: str) -> None:
    users = [f"u{uuid.uuid4().hex[:8]}" for _ in range(USERS)]
    records = Records.from_url(pg_url)
    await records.setup()
    ledger = BudgetLedger(records, default_usd=0)
    for user in users:
        await ledger.set_limit(user, PRICE)
        # the month row exists before the race (creating it would serialise the first reservation)
        held = await ledger.reserve(
            user_id=user, thread_id="t", execution_id="e", kind="tool", name="warm", estimate=PRICE
        )
        await ledger.release(held, "warm-up")
    charged = await race(_WORKER, pg_url, json.dumps(users), workers=WORKERS)
    spent = [(await ledger.status(user)).spent for user in users]
    await records.close()
    assert spent == [PRICE] * USERS  # every user charged exactly once, none overdrawn
    assert sum(charged) == USERS


_ONE_USER = r"""
import asyncio, json, sys, time
from decimal import Decimal
from keel.budget import BudgetExceeded, BudgetLedger
from keel.records import Records

db, user, tasks = sys.argv[1], sys.argv[2], int(sys.argv[3])

async def one(ledger):
    try:
        await ledger.reserve(user_id=user, thread_id="t", execution_id="e", kind="model",
                             name="race", estimate=Decimal("0.001"))
        return 1
    except BudgetExceeded:
        return 0

async def main():
    records = Records.from_url(db)
    ledger = BudgetLedger(records, default_usd=0)
    await ledger.status(user)  # connect before the start line
    print("ready", flush=True)
    sys.stdin.readline()  # the start line, given once every worker is ready
    won = sum(await asyncio.gather(*[one(ledger) for _ in range(tasks)]))
    await records.close()
    print(json.dumps({"won": won, "transactions": ledger.transactions, "statements": ledger.statements}))

asyncio.run(main())
"""


async def test_processes_racing_for_one_users_budget_hold_exactly_what_fits(pg_url: str) -> None:
    """Four processes of eight concurrent reservations each, all against one user whose month fits
    ten: exactly ten are held (a refusal means the month was full), and each reservation was one
    transaction of one statement (the conditional upsert, no lock taken before it; a refusal then reads
    the month once, without a lock, to say what is left)."""
    user, tasks = f"u{uuid.uuid4().hex[:8]}", 8
    records = Records.from_url(pg_url)
    await records.setup()
    ledger = BudgetLedger(records, default_usd=0)
    await ledger.set_limit(user, Decimal("0.0105"))
    reports = await race(_ONE_USER, pg_url, user, str(tasks), workers=WORKERS)
    status = await ledger.status(user)
    held = await ledger.history(user, limit=1000)
    await records.close()
    assert sum(r["won"] for r in reports) == 10 == len(held)
    assert (status.reserved, status.spent) == (Decimal("0.010"), 0), "never past the limit of 0.0105"
    assert [(r["transactions"], r["statements"]) for r in reports] == [(tasks, tasks)] * WORKERS
