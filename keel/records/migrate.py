"""Programmatic Alembic upgrades of the records database (no CLI, no CWD-relative alembic.ini).

Alembic (and its Mako templates) costs a few hundred milliseconds to import, and a database already at
head needs none of it: `setup` first reads `alembic_version` with one SELECT and compares it with
`HEAD_REVISION`, the newest revision this package ships (a test checks the constant against Alembic's own
view of the migrations directory, so a new migration without it fails the build). Only a database at
another revision, or none, imports Alembic and upgrades.
"""

from __future__ import annotations

import asyncio
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

__all__ = [
    "HEAD_REVISION",
    "MIGRATIONS_DIR",
    "alembic_config",
    "current_revision",
    "head_revision",
    "is_at_head",
    "process_lock",
    "upgrade",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

HEAD_REVISION = "0015"
"""The newest revision in migrations/versions (tests/test_cold_start.py checks it against `head_revision()`).
Adding a migration means updating this: a stale value would let `setup` skip the new migration."""

ADVISORY_LOCK_KEY = 0x6B65656C_7265_63
"""`pg_advisory_xact_lock` key serialising concurrent migrations on PostgreSQL (taken in env.py)."""


_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def process_lock() -> asyncio.Lock:
    """This event loop's migration lock.

    Alembic keeps its `context` and `op` proxies in module globals, so two upgrades may not
    interleave in one process (engines waiting on the database lock would). Hold this around
    `upgrade`; the database lock then only has other processes to serialise.
    """
    loop = asyncio.get_running_loop()
    if (lock := _LOCKS.get(loop)) is None:
        lock = _LOCKS[loop] = asyncio.Lock()
    return lock


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations, optionally bound to a connection."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str | None:
    """The newest revision shipped with this package, as Alembic reads the migrations directory."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _upgrade_sync(connection: Connection, revision: str) -> None:
    from alembic import command

    command.upgrade(alembic_config(connection), revision)


def _current_sync(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


async def is_at_head(conn: AsyncConnection) -> bool:
    """True when the database's `alembic_version` holds exactly `HEAD_REVISION` (one row).

    Another revision or several rows is False: the caller then runs the real upgrade, which decides under
    the migration lock. A database without `alembic_version` raises the driver's error (a new database:
    the caller upgrades). Never True by mistake: only the exact head this package ships skips Alembic.
    """
    from sqlalchemy import text

    rows = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
    return [tuple(r) for r in rows] == [(HEAD_REVISION,)]


async def upgrade(conn: AsyncConnection, revision: str = "head") -> None:
    """Upgrade the database to `revision` inside `conn`'s transaction, which the caller commits.

    On PostgreSQL env.py first takes a transaction-scoped advisory lock, so concurrent upgrades
    run one after the other and the later ones find the schema at head. On SQLite the
    caller's `BEGIN IMMEDIATE` does the same.
    """
    await conn.run_sync(_upgrade_sync, revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision the database is at, or None before the first migration."""
    async with engine.connect() as conn:
        return await conn.run_sync(_current_sync)
