"""What runs ask of long-term memory: similar memories in (recall), a memory of the run out (the writer).

Memory is an aid, not a dependency: a failed recall is logged and the run goes on without it; a failed
write stays queued and is retried (keel/memory/writer.py).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from keel.memory.long_term import MAX_TEXT_CHARS, LongTermMemory
from keel.memory.types import Memory, MemoryScope
from keel.records.types import RunMemory
from keel.redaction import redact_text

__all__ = [
    "QUERY_CHARS",
    "queued_memory_lines",
    "recall_memories",
    "run_memory_text",
    "write_run_memories",
    "write_run_memory",
]

log = logging.getLogger(__name__)

QUERY_CHARS = 2_000
"""The start of a task that recall compares with the user's memories. A memory holds at most 600 characters of
its own task (`run_memory_text`), and an embedding model reads about 512 tokens at once: embedding the
whole of a 40 KB request took the offline model 15 s, for a query no closer to those memories."""


async def recall_memories(memory: LongTermMemory | None, scope: MemoryScope, task: str, k: int) -> list[str]:
    """Lines for the system prompt: the user's `k` memories most similar to the task (its first
    `QUERY_CHARS` characters)."""
    if memory is None or k <= 0 or not task.strip():
        return []
    try:
        found = await memory.search(scope, task[:QUERY_CHARS], k)
    except Exception as exc:  # noqa: BLE001 - recall without memories rather than fail the run
        log.warning("long-term memory recall failed for %s: %s", scope.user_id, exc)
        return []
    return [f"memory: {m.text}" for m in found]


def run_memory_text(
    *,
    task: str,
    tools_used: Sequence[str],
    tools_failed: Sequence[str],
    status: str,
    reason: str | None,
    answer: str,
) -> str:
    """One memory of a run: what was asked, what was done, how it ended (redacted)."""
    done = ", ".join(dict.fromkeys(tools_used)) or "no tools"
    failed = ", ".join(dict.fromkeys(tools_failed))
    outcome = status + (f" ({reason})" if reason else "")
    text = (
        f"Asked: {' '.join(task.split())[:600]} | Done: {done}"
        + (f"; failed: {failed}" if failed else "")
        + f" | Outcome: {outcome}: {' '.join(answer.split())[:600]}"
    )
    return redact_text(text)[:MAX_TEXT_CHARS]


def queued_memory_lines(rows: Sequence[RunMemory], k: int) -> list[str]:
    """Recall lines for queued run memories (`rows` newest first; `k` at most), as the writer stores them: the
    user's latest runs are recalled before the writer has caught up, with no embedding on the way."""
    lines: list[str] = []
    for row in rows:
        if len(lines) >= k:
            break
        if not row.task.strip():
            continue
        line = "memory: " + _text_of(row)
        if line not in lines:
            lines.append(line)
    return lines


def _text_of(item: RunMemory) -> str:
    """The memory's text exactly as long-term memory stores it (whitespace collapsed)."""
    text = run_memory_text(
        task=item.task,
        tools_used=item.tools_used,
        tools_failed=item.tools_failed,
        status=item.status,
        reason=item.reason,
        answer=item.answer,
    )
    return " ".join(text.split())


async def write_run_memories(memory: LongTermMemory, items: Sequence[RunMemory]) -> None:
    """Store several runs' memories, the new texts embedded in one call (the embedder takes one call at a
    time: one call for a batch leaves recall's query embedding less to wait behind). Raises as one."""
    entries = [
        (MemoryScope(user_id=i.user_id, tenant=i.tenant), _text_of(i), {"execution_id": i.execution_id})
        for i in items
        if i.task.strip()
    ]
    if entries:
        await memory.remember_each(entries, kind="run")


async def write_run_memory(memory: LongTermMemory, item: RunMemory) -> Memory | None:
    """Store a run's memory (its id a digest of the text: a repeat stores nothing new); None for an empty
    task. Raises what the embedder or Chroma raise: the memory writer counts it and retries."""
    if not item.task.strip():
        return None
    text = _text_of(item)
    scope = MemoryScope(user_id=item.user_id, tenant=item.tenant)
    return await memory.remember(scope, text, kind="run", metadata={"execution_id": item.execution_id})
