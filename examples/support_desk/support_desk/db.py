"""The support desk's SQLite database: orders, tickets and refunds, created and seeded on first use.

Where it lives: `$SUPPORT_DESK_DB`, else `support_desk.sqlite` in keel's home (`$KEEL_HOME`, else `.keel`
in the working directory, where keel keeps its own files). The seed is code, not a download, so the
example runs offline and every fresh database starts the same.

A refund is stored with a UNIQUE idempotency key (keel's, for the call): the same key twice is one refund
(the second attempt gets the first one back), which is what makes `refund_order` safe to run again after a
crash.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["DB_ENV", "db_path", "connect", "SEED_ORDERS", "SEED_TICKETS"]

DB_ENV = "SUPPORT_DESK_DB"

SEED_ORDERS = [
    # id, customer, item, total, status
    (1001, "alice", "standing desk", 420.00, "delivered"),
    (1002, "alice", "desk lamp", 35.50, "shipped"),
    (1003, "bob", "office chair", 260.00, "processing"),
]
SEED_TICKETS = [
    # id, order_id, customer, subject, body, status
    (
        7,
        1001,
        "alice",
        "Scratched desktop",
        "The desk arrived with a deep scratch. Can I get $20 back?",
        "open",
    ),
    (8, 1002, "alice", "Where is my lamp?", "Tracking has not moved for four days.", "open"),
    (9, 1003, "bob", "Change colour", "Could the chair be black instead of grey?", "closed"),
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY, customer TEXT NOT NULL, item TEXT NOT NULL,
    total REAL NOT NULL, status TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tickets (
    id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL REFERENCES orders(id), customer TEXT NOT NULL,
    subject TEXT NOT NULL, body TEXT NOT NULL, status TEXT NOT NULL, resolution TEXT
);
CREATE TABLE IF NOT EXISTS refunds (
    id INTEGER PRIMARY KEY AUTOINCREMENT, order_id INTEGER NOT NULL REFERENCES orders(id),
    amount REAL NOT NULL, idempotency_key TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
"""


def db_path() -> Path:
    """The database file this process uses (see the module's docstring)."""
    if named := os.environ.get(DB_ENV):
        return Path(named)
    return Path(os.environ.get("KEEL_HOME") or ".keel") / "support_desk.sqlite"


@contextmanager
def connect() -> Iterator[sqlite3.Connection]:
    """A connection to the seeded database, committed on success, rolled back on error, then closed."""
    path = db_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        with conn:
            conn.executescript(_SCHEMA)
            conn.executemany("INSERT OR IGNORE INTO orders VALUES (?, ?, ?, ?, ?)", SEED_ORDERS)
            conn.executemany("INSERT OR IGNORE INTO tickets VALUES (?, ?, ?, ?, ?, ?, NULL)", SEED_TICKETS)
        with conn:
            yield conn
    finally:
        conn.close()
