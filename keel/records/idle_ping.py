"""Ping a pooled PostgreSQL connection at checkout only when it sat idle in the pool for a while.

Why: `pool_pre_ping` pings on every checkout, one more round trip per records transaction, on
connections that were in use a moment ago. A connection checked back in seconds ago is almost always
alive; one idle for longer may have been dropped (a database restart, an idle timeout, a proxy), so it
is pinged before use. A failed ping makes the pool throw away every connection older than now and retry
the checkout with a fresh one (SQLAlchemy's custom pessimistic disconnect handling: a checkout listener
raising `DisconnectionError`). A connection that dies within the idle window (a database restarted
seconds after its last use) is caught the same way once the process has seen a store fail: `suspect()`
(called when the checkpoint database fails, and by the records engine on a disconnect) makes every
connection pooled before that moment pinged at its next checkout, however recently it was used.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["IDLE_S", "ping_when_idle", "suspect"]

IDLE_S = 5.0
"""A connection idle in the pool longer than this is pinged at its next checkout."""

_CHECKED_IN = "keel_checked_in_at"
_suspect_since = float("-inf")


def suspect() -> None:
    """A store failed in this process (a database may have restarted): ping every connection pooled
    before now at its next checkout."""
    global _suspect_since
    _suspect_since = time.monotonic()


def ping_when_idle(engine: AsyncEngine, idle_s: float | None = None) -> None:
    """Install the checkin/checkout listeners on `engine`'s pool (pool_pre_ping left off); `idle_s`
    defaults to `IDLE_S`."""
    pool, dialect = engine.sync_engine.pool, engine.sync_engine.dialect
    idle_s = IDLE_S if idle_s is None else idle_s

    def checkin(_dbapi_conn: Any, record: Any) -> None:
        if record is not None:
            record.info[_CHECKED_IN] = time.monotonic()

    def checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop(_CHECKED_IN, None)  # a new connection has none: it was just opened
        if since is None or (time.monotonic() - since <= idle_s and since > _suspect_since):
            return
        try:
            dialect.do_ping(dbapi_conn)
        except Exception as err:  # noqa: BLE001 - any failed ping: the connection is not usable
            raise exc.InvalidatePoolError(f"idle pooled connection failed its ping: {err}") from err

    def handle_error(context: Any) -> None:
        if context.is_disconnect:
            suspect()

    sa.event.listen(pool, "checkin", checkin)
    sa.event.listen(pool, "checkout", checkout)
    sa.event.listen(engine.sync_engine, "handle_error", handle_error)
