"""Structured logs: JSON in production, readable in a terminal, the run's identity on every line.

Every event goes through the same pipeline: context variables (execution_id, thread_id, user hash, node,
version, bound per node step by `bind_run`), level, timestamp, keel's redaction, then the renderer.
Logs go to stderr so a command's stdout (JSON, tables) stays clean.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, Literal

import structlog

from keel.redaction import Redactor

__all__ = ["configure_logging", "get_logger", "bind_run", "user_hash", "LogFormat"]

LogFormat = Literal["auto", "json", "console"]
_REDACTOR = Redactor()


def user_hash(user_id: str) -> str:
    """A stable pseudonym of a user for logs, traces and metrics (16 hex characters of SHA-256)."""
    return hashlib.sha256(f"keel-user:{user_id}".encode()).hexdigest()[:16]


def _renderer(fmt: LogFormat, stream: IO[str]) -> Any:
    if fmt == "auto":
        fmt = "console" if getattr(stream, "isatty", lambda: False)() else "json"
    if fmt == "json":
        return structlog.processors.JSONRenderer(sort_keys=False, default=str)
    return structlog.dev.ConsoleRenderer(colors=getattr(stream, "isatty", lambda: False)())


def configure_logging(level: str = "warning", fmt: LogFormat = "auto", stream: IO[str] | None = None) -> None:
    """Configure structlog for the process (idempotent; the last call wins)."""
    stream = stream or sys.stderr
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _REDACTOR.structlog_processor,
            _renderer(fmt, stream),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str = "keel") -> Any:
    """A structlog logger; the bound run context is merged into every event it emits."""
    return structlog.get_logger(name)


@contextmanager
def bind_run(
    *, execution_id: str, thread_id: str, user_id: str, version: str, node: str | None = None
) -> Iterator[None]:
    """Bind the run's identity (user hashed) to every log line emitted inside the block."""
    with structlog.contextvars.bound_contextvars(
        execution_id=execution_id,
        thread_id=thread_id,
        user=user_hash(user_id),
        version=version,
        node=node,
    ):
        yield
