"""One tool per effect class, for the kill -9 drill (tests/reliability/test_effects_killed.py).

Each records every attempt in a SQLite "world" file ($EFFECT_WORLD) shared by the processes of a drill,
and does its effect there (or, for the transactional one, in keel's records transaction). When
$EFFECT_KILL names the tool and $EFFECT_KILL_MARK does not exist yet, the tool dies with SIGKILL right
after its effect, before keel has recorded the call: the next process must resume the run.
"""

from __future__ import annotations

import os
import signal
import sqlite3
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

NOTES_TABLE = "effect_drill_notes"


def world() -> sqlite3.Connection:
    conn = sqlite3.connect(os.environ["EFFECT_WORLD"], isolation_level=None, timeout=30)
    conn.execute("CREATE TABLE IF NOT EXISTS attempts (tool TEXT, key TEXT)")
    conn.execute("CREATE TABLE IF NOT EXISTS status (order_id TEXT PRIMARY KEY, status TEXT)")
    conn.execute("CREATE TABLE IF NOT EXISTS charges (key TEXT PRIMARY KEY, amount REAL)")
    return conn


def _attempt(tool: str, key: str | None = None) -> None:
    with world() as conn:
        conn.execute("INSERT INTO attempts VALUES (?, ?)", (tool, key))


def _maybe_die(tool: str) -> None:
    mark = Path(os.environ.get("EFFECT_KILL_MARK", "/nonexistent/mark"))
    if os.environ.get("EFFECT_KILL") == tool and not mark.exists():
        mark.write_text("killed", encoding="utf-8")
        os.kill(os.getpid(), signal.SIGKILL)


def fetch_order(order_id: str) -> str:
    """Read an order (changes nothing)."""
    _attempt("fetch_order")
    _maybe_die("fetch_order")
    return f"order {order_id}: paid"


def set_status(order_id: str, status: str) -> str:
    """Set an order's status (doing it twice is doing it once)."""
    _attempt("set_status")
    with world() as conn:
        conn.execute("INSERT OR REPLACE INTO status VALUES (?, ?)", (order_id, status))
    _maybe_die("set_status")
    return f"{order_id} is {status}"


def charge_card(order_id: str, amount: float, idempotency_key: str) -> str:
    """Charge an order's card; the payment provider ignores a key it has seen."""
    _attempt("charge_card", idempotency_key)
    with world() as conn:
        conn.execute("INSERT OR IGNORE INTO charges VALUES (?, ?)", (idempotency_key, amount))
    _maybe_die("charge_card")
    return f"charged {amount:.2f} for {order_id}"


async def note_order(order_id: str, note: str, transaction: AsyncConnection) -> str:
    """Add a note to an order, in keel's records transaction."""
    _attempt("note_order")
    await transaction.execute(
        text(f"INSERT INTO {NOTES_TABLE} (order_id, note) VALUES (:o, :n)"), {"o": order_id, "n": note}
    )
    _maybe_die("note_order")  # the transaction is open: dying here commits nothing
    return f"noted on {order_id}"
