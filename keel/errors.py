"""Errors a keel user sees: each carries a one-line reason."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    POOL_TIMEOUTS: tuple[type[BaseException], ...]
    CHECKPOINT_STORE_ERRORS: tuple[type[BaseException], ...]

__all__ = [
    "CHECKPOINT_STORE_ERRORS",
    "POOL_TIMEOUTS",
    "KeelError",
    "NotFound",
    "Conflict",
    "Forbidden",
    "StoreUnavailable",
    "ToolInputError",
    "ToolGuardRefused",
    "describe",
]


def _pool_timeouts() -> tuple[type[BaseException], ...]:
    from sqlalchemy import exc as sa_exc

    errors: list[type[BaseException]] = [sa_exc.TimeoutError]
    try:
        from psycopg_pool import PoolTimeout
    except ImportError:  # the embedded profile does not need psycopg
        pass
    else:
        errors.append(PoolTimeout)
    return tuple(errors)


def _checkpoint_store_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [sqlite3.OperationalError, *_lazy("POOL_TIMEOUTS")]
    try:
        import psycopg
    except ImportError:
        pass
    else:
        errors.append(psycopg.OperationalError)
    return tuple(errors)


# POOL_TIMEOUTS: a connection pool's "no connection free in time" (SQLAlchemy's, psycopg_pool's): the store
# is saturated, not the model down. CHECKPOINT_STORE_ERRORS: driver errors of the checkpointers
# (AsyncSqliteSaver, AsyncPostgresSaver) and their pools: a store failure, reported in one line
# (StoreUnavailable), never a crash with a raw traceback. Both are built on first use (see __getattr__).
_BUILDERS = {"POOL_TIMEOUTS": _pool_timeouts, "CHECKPOINT_STORE_ERRORS": _checkpoint_store_errors}
_BUILT: dict[str, tuple[type[BaseException], ...]] = {}


def _lazy(name: str) -> tuple[type[BaseException], ...]:
    if name not in _BUILT:
        _BUILT[name] = _BUILDERS[name]()
    return _BUILT[name]


def __getattr__(name: str) -> Any:
    """POOL_TIMEOUTS and CHECKPOINT_STORE_ERRORS, built on first use (PEP 562): they import
    SQLAlchemy and psycopg, which `keel --help` and every module that only raises a KeelError must not."""
    if name in _BUILDERS:
        return _lazy(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class KeelError(Exception):
    """A request keel refuses, with a one-line reason for the user."""


class NotFound(KeelError):
    """The thread, approval or execution does not exist."""


class Conflict(KeelError):
    """The request does not fit the current state (already decided, already running, …)."""


class Forbidden(KeelError):
    """The caller's role may not do this."""


class StoreUnavailable(KeelError):
    """A database keel keeps the run in (checkpoints) failed; what was saved is kept, resume later."""


class ToolInputError(ValueError):
    """A tool call's arguments are well-typed but cannot be acted on (a path outside the workspace, say),
    or a guard refused the call before it ran: what the model is told, nothing was executed. (Here, below
    both the tools that raise it and the guards that refine it; `keel.tools.spec` re-exports it.)"""


class ToolGuardRefused(Exception):
    """A tool call refused before it ran (rate limit, open breaker, budget, store down): told to the model.
    Raised by the executor's tool guard (keel.guards.ToolGuard) on entering a call; not a ToolInputError (the
    call was well-formed). Here, below the guards that raise it; `keel.tools.spec` re-exports it."""


def describe(exc: BaseException, *, limit: int = 3) -> str:
    """`Class: message`, followed by its causes in brackets and the host a request went to: a provider's
    "Connection error." alone hides the `ConnectError` under it, and that is what an operator needs."""
    parts: list[str] = []
    seen: set[int] = set()
    last_text, where = None, None
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(parts) < limit:
        seen.add(id(current))
        text = " ".join(str(current).split())
        if text != last_text or current is exc:  # a wrapper repeating its cause's words adds nothing
            parts.append(f"{type(current).__name__}: {text}" if text else type(current).__name__)
        last_text, where = text, where or _host_of(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    head, *causes = parts
    return head + "".join(f" ({cause})" for cause in causes) + (f" calling {where}" if where else "")


def _host_of(exc: BaseException) -> str | None:
    """`scheme://host:port` of the HTTP request an error is about (httpx/openai keep it), never the path."""
    url = getattr(getattr(exc, "_request", None) or getattr(exc, "__dict__", {}).get("request"), "url", None)
    host = getattr(url, "host", None)
    return f"{url.scheme}://{host}:{url.port}" if host and getattr(url, "port", None) else None
