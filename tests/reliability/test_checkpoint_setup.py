"""Replicas starting together on a new PostgreSQL database all get their checkpointer.

The checkpointer's migrations run under an advisory lock, and they create indexes CONCURRENTLY, which waits
for every statement running in the database to end. A replica waiting in `pg_advisory_lock` is such a
statement: the lock's holder waited on its own waiters and start-up hung (seen when test_replicas ran first
on a new database). Four starts at once, each with its own pool (as four processes have), must all finish.
"""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest

from keel.app.backends import open_checkpointer
from keel.settings import Settings
from tests.conftest import PG_ADMIN

pytestmark = pytest.mark.postgres


async def test_four_starts_at_once_on_a_new_database_all_set_up_the_checkpointer(tmp_path) -> None:
    name = f"keel_cp_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        settings = Settings(
            profile="postgres", database_url=PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", home=tmp_path
        )

        async def start() -> bool:
            async with open_checkpointer(settings) as saver:
                return saver is not None

        assert await asyncio.wait_for(asyncio.gather(*(start() for _ in range(4))), timeout=60) == [True] * 4
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
