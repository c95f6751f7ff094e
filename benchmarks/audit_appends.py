"""Concurrent audit appends on PostgreSQL: appends per second, statements per append, and how many backends
wait on a lock meanwhile (sampled from `pg_stat_activity`). Numbers only; no assertion is made on them.

    .venv/bin/python -m benchmarks.audit_appends [--runs 50] [--appends 20] [--hold-ms 5]

Each run appends to its own thread, one row per transaction, and keeps the transaction open `--hold-ms`
after the append (the rest of a node step's transaction). A lock shared by every run shows as most
backends waiting; per-thread chains show none. A new database is created and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid

import psycopg
import sqlalchemy as sa

from keel.records import AuditEvent, Records

PG_ADMIN = os.environ.get("KEEL_TEST_PG_ADMIN", "postgresql://127.0.0.1:5432/postgres")
_WAITING = (
    "SELECT count(*) FILTER (WHERE wait_event_type = 'Lock'), "
    "count(*) FILTER (WHERE state = 'active' OR state LIKE 'idle in%') "
    "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


def _event(thread: str, i: int) -> AuditEvent:
    return AuditEvent(
        execution_id="bench",
        thread_id=thread,
        user_id="alice",
        role="user",
        tenant="acme",
        event="tool_call",
        tool=f"t{i}",
        args={"i": i},
        status="ok",
    )


async def _sample(url: str, into: list[tuple[int, int]]) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        while True:
            into.append(await (await conn.execute(_WAITING)).fetchone())  # type: ignore[arg-type]
            await asyncio.sleep(0.02)


async def bench(runs: int, appends: int, hold_s: float) -> str:
    name = f"keel_auditbench_{uuid.uuid4().hex[:8]}"
    base = PG_ADMIN.rsplit("/", 1)[0]
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    records = Records.from_url(
        f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://"), pool_size=runs
    )
    try:
        await records.setup()
        statements = [0]

        def count(*_: object) -> None:
            statements[0] += 1

        async def run(k: int) -> None:
            thread = f"th-{k}-{uuid.uuid4().hex[:6]}"
            for i in range(appends):
                async with records.transaction() as conn:
                    await records.append_audit(_event(thread, i), conn=conn)
                    if hold_s:
                        await asyncio.sleep(hold_s)

        await asyncio.gather(*(run(k) for k in range(min(runs, 4))))  # warm the pool and the caches
        sa.event.listen(records.engine.sync_engine, "before_cursor_execute", count)
        samples: list[tuple[int, int]] = []
        sampler = asyncio.create_task(_sample(f"{base}/{name}", samples))
        started = time.perf_counter()
        await asyncio.gather(*(run(k) for k in range(runs)))
        elapsed = time.perf_counter() - started
        sampler.cancel()
        total = runs * appends
        report = await records.verify_audit()
        waiting = sum(w for w, _ in samples) / max(1, len(samples))
        busy = sum(b for _, b in samples) / max(1, len(samples))
        return (
            f"{total} appends by {runs} runs, transaction held {hold_s * 1000:g} ms: {total / elapsed:.0f} "
            f"appends/s, {statements[0] / total:.2f} statements per append, backends waiting on a lock "
            f"{waiting:.1f} of {busy:.1f} in a transaction (mean of {len(samples)} samples); "
            f"{report.describe()}"
        )
    finally:
        await records.close()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--appends", type=int, default=20)
    parser.add_argument("--hold-ms", type=float, default=5.0)
    args = parser.parse_args()
    print(asyncio.run(bench(args.runs, args.appends, args.hold_ms / 1000)))


if __name__ == "__main__":
    main()
