"""One `Backends` per server process, shared by the graph factory, the auth handler and the routes.

Building them reads files (policy, prices) and migrating runs Alembic (which reads its scripts): blocking
work that must not run on the server's event loop. `start()` (the custom app's lifespan) does it in a
worker thread before the first request (with a synchronous engine: a thread running its own event loop would
still be flagged by `langgraph dev`'s blocking-call detector); `server_backends()` then only returns it.
"""

from __future__ import annotations

import asyncio
import threading

from keel.app.backends import Backends
from keel.config import KeelConfig, find_config, load_config
from keel.settings import Settings

__all__ = ["server_backends", "server_config", "server_settings", "start", "stop"]

_lock = threading.Lock()
_built: list[Backends] = []


def server_backends() -> Backends:
    """The process's backends, built from `KEEL_*` settings on first use.

    Their `ready()` migrates in a worker thread (never `Records.setup()` on the event loop), so a node
    awaiting it before the lifespan's `start()` has finished waits for the same one-time migration.
    """
    if not _built:
        with _lock:
            if not _built:
                b = Backends.from_settings(server_settings(), config=server_config())
                b.ready_via(lambda: asyncio.to_thread(_run_ready, b))
                _built.append(b)
    return _built[0]


def server_config() -> KeelConfig | None:
    """The project config the server runs, found as the CLI finds it: $KEEL_CONFIG, else ./keel.yaml (the
    folder `langgraph dev` runs in, beside langgraph.json); None: keel's built-in tools. A bad config stops
    the server at start with FILE:LINE, as it stops the CLI."""
    found = find_config()
    return load_config(found) if found is not None else None


def server_settings() -> Settings:
    """`KEEL_*` settings; a server logs at `info` unless KEEL_LOG_LEVEL says otherwise (the library and
    the CLI default to `warning`)."""
    settings = Settings()
    if "log_level" not in settings.model_fields_set:
        settings = settings.model_copy(update={"log_level": "info"})
    return settings


async def start() -> Backends:
    """Build and migrate the backends off the event loop (the lifespan and the graph factory call this)."""
    b = _built[0] if _built else await asyncio.to_thread(server_backends)
    await b.ready()
    return b


_migrate_lock = threading.Lock()


def _run_ready(b: Backends) -> None:
    """Migrate to head with a synchronous engine in this worker thread, then mark `b` ready (once)."""
    with _migrate_lock:
        if not b.is_ready:
            _migrate(b)


def _migrate(b: Backends) -> None:
    from pathlib import Path

    import sqlalchemy as sa
    from alembic import command

    from keel.records.migrate import alembic_config

    url = sa.make_url(b.settings.records_url)
    if url.get_backend_name() == "sqlite":
        url = url.set(drivername="sqlite")
        if url.database:
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "head")
    finally:
        engine.dispose()
    b.mark_ready()  # the schema is at head: `await b.ready()` on the event loop is now a no-op


async def stop() -> None:
    """Close the pooled connections."""
    if _built:
        await _built[0].aclose()
