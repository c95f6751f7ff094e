"""What the recall and finalize nodes ask of long-term memory: similar memories in, a memory of the run out.

Memory is an aid, not a dependency: a failure here is logged and the run goes on without it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from keel.memory.long_term import MAX_TEXT_CHARS, LongTermMemory
from keel.memory.types import Memory, MemoryScope
from keel.redaction import redact_text

__all__ = ["recall_memories", "remember_run", "run_memory_text"]

log = logging.getLogger(__name__)


async def recall_memories(memory: LongTermMemory | None, scope: MemoryScope, task: str, k: int) -> list[str]:
    """Lines for the system prompt: the user's `k` memories most similar to the task."""
    if memory is None or k <= 0 or not task.strip():
        return []
    try:
        found = await memory.search(scope, task, k)
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


async def remember_run(
    memory: LongTermMemory | None,
    scope: MemoryScope,
    *,
    task: str,
    tools_used: Sequence[str],
    tools_failed: Sequence[str],
    status: str,
    reason: str | None,
    answer: str,
    execution_id: str,
) -> Memory | None:
    """Store the run's memory (de-duplicated by text); None when memory is off, the task empty, on error."""
    if memory is None or not task.strip():
        return None
    text = run_memory_text(
        task=task,
        tools_used=tools_used,
        tools_failed=tools_failed,
        status=status,
        reason=reason,
        answer=answer,
    )
    try:
        return await memory.remember(scope, text, kind="run", metadata={"execution_id": execution_id})
    except Exception as exc:  # noqa: BLE001 - the execution record is written either way
        log.warning("long-term memory write failed for %s: %s", scope.user_id, exc)
        return None
