"""The run-memory writer: moves run memories from the records database's queue (`memory_queue`) into
long-term memory, off the request path. One asyncio task per process, owned by the composition root.

- Never lost: finalize commits the row with its execution, and a row is deleted only after its memory is in
  Chroma. A process killed anywhere leaves the row; the next writer (of this or another process) claims it
  once its lease (`lease_s`) has passed.
- At least once, exactly once in effect: a memory's text is a function of the row alone and its id a digest of
  (tenant, user, text), so writing a row again (a crash between the Chroma write and the delete, a lease that
  passed while its writer was still on it) adds nothing: the memory is stored once.
- A failed write counts an attempt, keeps the error on the row and holds it back (backoff doubling to
  `_MAX_BACKOFF_S`); it is retried, never dropped.
- Read-your-writes is recall's part: it reads the user's queued rows with its other read and recalls them
  as they are (`keel.memory.run_memory.queued_memory_lines`), so nothing waits on this task.
- `aclose` flushes: the task writes what is claimable, bounded by `flush_timeout_s`, then logs what it left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from keel.memory.run_memory import write_run_memories, write_run_memory
from keel.records.types import QueuedMemory, utcnow

if TYPE_CHECKING:
    from keel.memory.long_term import LongTermMemory
    from keel.records import Records

__all__ = ["MemoryWriter"]

log = logging.getLogger(__name__)

_BATCH = 32
_LINGER_S = 0.5
"""Woken by a new row, the task waits this long first, so that runs finishing together are embedded in one
call (recall finds queued rows in the queue meanwhile)."""
_IDLE_S = 5.0
"""Without a wake-up, the task looks for claimable rows this often (backoffs over, dead processes' leases)."""
_FIRST_BACKOFF_S = 1.0
_MAX_BACKOFF_S = 300.0


def _one_line(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


class MemoryWriter:
    """Writes queued run memories to long-term memory in a background task (`start`, `wake`, `aclose`)."""

    def __init__(
        self,
        records: Records,
        memory: LongTermMemory,
        *,
        lease_s: float = 60.0,
        flush_timeout_s: float = 10.0,
        batch: int = _BATCH,
        idle_s: float = _IDLE_S,
        linger_s: float = _LINGER_S,
    ) -> None:
        self.records = records
        self.memory = memory
        self.lease_s = lease_s
        self.flush_timeout_s = flush_timeout_s
        self.batch = batch
        self.idle_s = idle_s
        self.linger_s = linger_s
        self.written = 0
        """Rows this process wrote and deleted."""
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._closed = asyncio.Event()
        self._closing = False

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the task on the running loop (once; a cheap no-op while it runs there)."""
        if self._closing:
            return
        loop = asyncio.get_running_loop()
        if self._task is not None and not self._task.done() and self._task.get_loop() is loop:
            return
        self._wake = asyncio.Event()
        self._closed = asyncio.Event()
        self._task = loop.create_task(self._run(), name="keel-memory-writer")

    def wake(self) -> None:
        """A row was queued: look for it now rather than at the next idle poll."""
        self.start()
        self._wake.set()

    async def write_batch(self) -> int:
        """Claim up to `batch` rows and write them; how many were claimed."""
        rows = await self.records.claim_memory(limit=self.batch, lease_s=self.lease_s)
        await self._write(rows)
        return len(rows)

    async def aclose(self) -> None:
        """Flush and stop: the task writes every claimable row, within `flush_timeout_s`; then one log line
        says what is left for the next start. Nothing to do when the task never started."""
        self._closing = True
        task, self._task = self._task, None
        if task is None:
            return
        self._wake.set()
        self._closed.set()
        timed_out = False
        try:
            await asyncio.wait_for(task, self.flush_timeout_s)  # cancels the task on timeout
        except TimeoutError:
            timed_out = True
        except Exception as exc:  # noqa: BLE001 - shutting down: say it, do not fail the close
            log.warning("memory writer stopped with an error: %s", _one_line(exc))
        try:
            left = await self.records.queued_memory_count()
        except Exception as exc:  # noqa: BLE001
            log.warning(
                "memory writer flushed %d run memories; the queue could not be read: %s",
                self.written,
                _one_line(exc),
            )
            return
        if not left:
            log.info("memory writer flushed: %d run memories written, none left in the queue", self.written)
            return
        why = (
            f"the flush stopped after {self.flush_timeout_s:g}s"
            if timed_out
            else "held back after failed writes, or claimed by another process"
        )
        log.warning("memory writer left %d run memories in the queue for the next start (%s)", left, why)

    # -- internals ------------------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            try:
                claimed = await self.write_batch()
            except Exception as exc:  # noqa: BLE001 - records or Chroma down: the rows wait, we retry
                log.warning("memory writer: %s", _one_line(exc))
                claimed = 0
                if self._closing:
                    return
            if claimed:
                continue
            if self._closing:
                return
            try:
                async with asyncio.timeout(self.idle_s):
                    await self._wake.wait()
            except TimeoutError:
                continue
            self._wake.clear()
            if not self._closing:
                await self._linger()

    async def _linger(self) -> None:
        """Wait `linger_s` for more rows, or less: `aclose` ends the wait (no run will queue one now)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.linger_s):
                await self._closed.wait()

    async def _write(self, rows: Sequence[QueuedMemory]) -> int:
        if not rows:
            return 0
        try:
            await write_run_memories(self.memory, rows)  # the batch, embedded in one call
        except Exception:  # noqa: BLE001 - row by row, so that only the rows that fail are held back
            return await self._write_each(rows)
        await self.records.memory_written([row.id for row in rows])
        self.written += len(rows)
        return len(rows)

    async def _write_each(self, rows: Sequence[QueuedMemory]) -> int:
        written: list[int] = []
        for row in rows:
            try:
                await write_run_memory(self.memory, row)
            except Exception as exc:  # noqa: BLE001 - counted on the row, retried after a backoff
                backoff = min(_FIRST_BACKOFF_S * 2**row.attempts, _MAX_BACKOFF_S)
                error = _one_line(exc)
                await self.records.memory_failed(
                    row.id, error, retry_at=utcnow() + timedelta(seconds=backoff)
                )
                log.warning(
                    "run memory of %s not written (attempt %d): %s", row.execution_id, row.attempts + 1, error
                )
            else:
                written.append(row.id)
        await self.records.memory_written(written)
        self.written += len(written)
        return len(written)
