"""Pooled PostgreSQL connections are pinged at checkout only after sitting idle (keel/records/idle_ping.py):
a connection the server dropped while it was idle is replaced before use; one used a moment ago is not
pinged (no round trip per checkout)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
import pytest
import sqlalchemy as sa

from keel.records import Records, RecordsUnavailable, idle_ping

pytestmark = pytest.mark.postgres


async def _open(pg_url: str, idle_s: float, monkeypatch: pytest.MonkeyPatch) -> tuple[Records, list[int]]:
    """Records on a one-connection pool whose idle threshold is `idle_s`; the list counts its pings."""
    monkeypatch.setattr(idle_ping, "IDLE_S", idle_s)
    records = Records.from_url(pg_url, pool_size=1, pool_timeout_s=5)
    await records.setup()
    pings: list[int] = []
    dialect = records.engine.sync_engine.dialect
    ping = dialect.do_ping

    def counted(dbapi_connection: object) -> bool:
        pings.append(1)
        return ping(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counted)
    return records, pings


async def _backend(records: Records) -> int:
    async with records.transaction() as conn:
        return int((await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one())


def _terminate(pg_url: str, pid: int) -> None:
    """Drop one server connection, as a database restart or an idle timeout would."""
    with psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


@pytest.fixture
async def closing() -> AsyncIterator[list[Records]]:
    opened: list[Records] = []
    yield opened
    for records in opened:
        await records.close()


async def test_an_idle_connection_the_server_dropped_is_replaced_at_checkout(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, closing: list[Records]
) -> None:
    records, pings = await _open(pg_url, 0.0, monkeypatch)  # every reused connection counts as idle
    closing.append(records)
    first = await _backend(records)
    _terminate(pg_url, first)
    second = await _backend(records)  # the ping failed: a fresh connection, no error
    assert second != first and pings, "the reused connection was pinged and replaced"


async def test_a_connection_used_a_moment_ago_is_not_pinged(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, closing: list[Records]
) -> None:
    records, pings = await _open(pg_url, 3600.0, monkeypatch)
    closing.append(records)
    first = await _backend(records)
    for _ in range(5):
        assert await _backend(records) == first
    assert pings == [], "no ping on a connection that was not idle"
    _terminate(pg_url, first)  # dropped inside the idle window: nothing catches it before use...
    with pytest.raises(RecordsUnavailable):
        await _backend(records)
    assert await _backend(records) != first  # ...the failure invalidated the pool: the next one is fresh


async def test_after_a_store_failed_a_connection_used_a_moment_ago_is_pinged_and_replaced(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, closing: list[Records]
) -> None:
    """A database restarted seconds after a connection's last use: once the process has seen a store fail
    (the checkpoint database, say), the pooled connection is pinged and replaced instead of failing."""
    records, pings = await _open(pg_url, 3600.0, monkeypatch)
    closing.append(records)
    first = await _backend(records)
    _terminate(pg_url, first)
    idle_ping.suspect()  # what keel does when the checkpoint database fails
    second = await _backend(records)  # no RecordsUnavailable: pinged, replaced
    assert second != first and pings == [1]
    assert await _backend(records) == second and pings == [1], "pinged once, not on every checkout"
