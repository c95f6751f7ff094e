"""Fixtures of the store drills: a throwaway redis-server and a throwaway PostgreSQL cluster."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
from _servers import ThrowawayPostgres, ThrowawayRedis, postgres_bin


@pytest.fixture
def throwaway_redis() -> Iterator[ThrowawayRedis]:
    """A redis-server of the test's own, SIGKILLed in teardown."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed: the Redis drill needs its own server")
    server = ThrowawayRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    """A PostgreSQL cluster of the module's own, stopped and deleted in teardown."""
    if postgres_bin() is None:
        pytest.skip("initdb not found under /usr/lib/postgresql/*/bin: the drill needs its own cluster")
    cluster = ThrowawayPostgres()
    try:
        cluster.init()
        yield cluster
    finally:
        cluster.destroy()
