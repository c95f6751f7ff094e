"""One MCP server as keel reaches it: a connection (stdio or streamable HTTP, through langchain-mcp-adapters'
`create_session`), listing its tools at start and calling them during runs.

Session lifecycle (measured in docs/architecture.md): one persistent session per server and event loop,
opened at the first call and kept until `aclose()` (Backends.aclose), because a new stdio process per call
costs a process start and an MCP handshake every time. anyio requires a session's context to be entered
and left by the same task, so a small owner task holds it open and calls are made through it from any
task of that loop. A session that fails (the server process died, the HTTP server went away) is dropped:
that call is `failed`, the next call opens a new one. A hang is the executor's timeout.

Listing at start runs in a fresh thread with its own loop (`discover`), so it works from synchronous code
(Backends.from_settings) whether or not an event loop is running there, and leaves no session behind.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any, TextIO

from langchain_mcp_adapters.sessions import Connection, create_session
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import McpError
from mcp.types import CONNECTION_CLOSED, CallToolResult, Tool

__all__ = ["McpClient", "connection_for", "discover", "START_TIMEOUT_S"]

START_TIMEOUT_S = 20.0
"""Bound on connecting to a server and listing its tools at start (a process start and a handshake)."""

_PYTHON_NAMES = ("python", "python3")


def connection_for(
    *, command: str | None, args: Sequence[str], env: dict[str, str], url: str | None, cwd: Path
) -> Connection:
    """The adapters' connection dict of a keel.yaml `mcp:` entry. A stdio server runs in the config's
    folder; `command: python` (or python3) is the interpreter keel runs under, so a server written with
    the `mcp` SDK finds it installed whatever `python` is on PATH."""
    if url is not None:
        return {"transport": "streamable_http", "url": url}
    assert command is not None
    exe = sys.executable if command in _PYTHON_NAMES else command
    conn: dict[str, Any] = {"transport": "stdio", "command": exe, "args": list(args), "cwd": str(cwd)}
    if env:
        conn["env"] = dict(env)
    return conn  # type: ignore[return-value]


def _errlog() -> TextIO:
    """Where a stdio server's stderr goes: this process's stderr when it is a real file, else the stderr the
    process started with (a test runner's or a notebook's capture has no file descriptor to hand a child)."""
    try:
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return sys.__stderr__
    return sys.stderr


@asynccontextmanager
async def _open(connection: Connection) -> AsyncIterator[ClientSession]:
    """A session over `connection`. stdio is opened here with an explicit `errlog`: mcp's `stdio_client`
    otherwise uses the `sys.stderr` of the moment mcp was first imported, which under a replaced stderr
    fails every start with 'fileno'."""
    if connection["transport"] != "stdio":
        async with create_session(connection) as session:
            yield session
        return
    c: dict[str, Any] = dict(connection)
    params = StdioServerParameters(command=c["command"], args=c["args"], env=c.get("env"), cwd=c.get("cwd"))
    async with stdio_client(params, errlog=_errlog()) as (read, write), ClientSession(read, write) as session:
        yield session


class _Live:
    """A session held open by its owner task on one event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.session: ClientSession | None = None
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def close(self, timeout_s: float = 10.0) -> None:
        self.stop.set()
        if self.task is not None and not self.task.done():
            with suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self.task, timeout_s)


class McpClient:
    """Calls to one MCP server: `list_tools()` once, `call(tool, args)` per tool call."""

    def __init__(self, name: str, connection: Connection) -> None:
        self.name = name
        self.connection = connection
        self._live: _Live | None = None
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None
        self.opened = 0
        """Sessions opened for calls so far (a test sees a reconnect)."""

    @property
    def transport(self) -> str:
        return str(self.connection["transport"])

    async def list_tools(self) -> list[Tool]:
        """Every tool the server lists (all pages), over a session opened and closed here."""
        async with _open(self.connection) as session:
            await session.initialize()
            tools: list[Tool] = []
            cursor: str | None = None
            for _ in range(1000):
                page = await session.list_tools(cursor=cursor)
                tools.extend(page.tools)
                if not page.nextCursor:
                    return tools
                cursor = page.nextCursor
            raise RuntimeError("more than 1000 pages of tools")

    async def call(self, tool: str, args: dict[str, Any]) -> CallToolResult:
        """Call `tool` on this loop's session (opened on first use). A failure drops the session, so the
        next call reconnects; the failure itself is raised (the executor records the call `failed`)."""
        live = await self._session()
        assert live.session is not None
        try:
            return await live.session.call_tool(tool, args)
        except McpError as exc:
            if exc.error.code == CONNECTION_CLOSED:
                await self._drop(live)
            raise  # an error answer (unknown tool, bad params): the session itself is fine
        except Exception:
            await self._drop(live)
            raise

    async def _drop(self, live: _Live) -> None:
        if self._live is live:
            self._live = None
        await live.close(timeout_s=2.0)

    async def _session(self) -> _Live:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock_loop is not loop:
            self._lock, self._lock_loop = asyncio.Lock(), loop
        async with self._lock:
            live = self._live
            alive = live is not None and live.task is not None and not live.task.done()
            if alive and live.loop is loop and live.session is not None:  # type: ignore[union-attr]
                return live  # type: ignore[return-value]
            if live is not None and live.loop is loop:
                await live.close(timeout_s=2.0)
            # A session of another (finished) loop cannot be closed from here; it went with its loop.
            live = _Live(loop)
            ready: asyncio.Future[None] = loop.create_future()
            live.task = loop.create_task(self._own(live, ready), name=f"mcp:{self.name}")
            try:
                await ready
            except BaseException:
                await live.close(timeout_s=2.0)
                raise
            self._live = live
            self.opened += 1
            return live

    async def _own(self, live: _Live, ready: asyncio.Future[None]) -> None:
        try:
            async with _open(self.connection) as session:
                await session.initialize()
                live.session = session
                ready.set_result(None)
                await live.stop.wait()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller waiting for the session
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(repr(exc)))
        finally:
            live.session = None

    async def aclose(self) -> None:
        """Close this loop's session (stops a stdio server process)."""
        live, self._live = self._live, None
        if live is None:
            return
        try:
            same_loop = asyncio.get_running_loop() is live.loop
        except RuntimeError:
            same_loop = False
        if same_loop:
            await live.close()


def discover(clients: Sequence[McpClient], timeout_s: float = START_TIMEOUT_S) -> dict[str, Any]:
    """`{server name: [Tool, ...] or the exception}` for every client, listed concurrently in a thread of
    its own (its own event loop), each bounded by `timeout_s`."""
    results: dict[str, Any] = {}

    async def one(client: McpClient) -> None:
        try:
            results[client.name] = await asyncio.wait_for(client.list_tools(), timeout_s)
        except TimeoutError:
            results[client.name] = TimeoutError(f"no answer to list_tools within {timeout_s:.0f} s")
        except Exception as exc:  # noqa: BLE001 - reported at the entry's line
            results[client.name] = exc

    async def every() -> None:
        await asyncio.gather(*(one(c) for c in clients))

    thread = threading.Thread(target=lambda: asyncio.run(every()), name="keel-mcp-discover", daemon=True)
    thread.start()
    thread.join(timeout_s + 15)
    for client in clients:
        results.setdefault(client.name, TimeoutError(f"no answer within {timeout_s:.0f} s"))
    return results
