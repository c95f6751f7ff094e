"""The memory backends of one keel process, built from the settings (called by keel/app/backends.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import BaseMessage, SystemMessage

from keel.memory.context import ContextFitter
from keel.memory.long_term import LongTermMemory
from keel.memory.working import InProcessWorkingMemory, RedisWorkingMemory, WorkingMemory
from keel.memory.writer import MemoryWriter
from keel.settings import Settings

__all__ = ["MemoryBackends", "fit_context"]


@dataclass(kw_only=True)
class MemoryBackends:
    """Long-term memory (Chroma), working memory (Redis or in-process) and the context fitter over it."""

    long_term: LongTermMemory | None
    """None when `memory_enabled` is off."""
    working: WorkingMemory
    context: ContextFitter
    writer: MemoryWriter | None = None
    """Writes the queued run memories to `long_term` (set, started and closed by keel/app/backends.py)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> MemoryBackends:
        """Built without I/O: Chroma and the embedding model open on first use."""
        working: WorkingMemory
        if settings.profile == "postgres":
            working = RedisWorkingMemory(
                settings.working_memory_url or settings.redis_url,
                ttl_s=settings.working_memory_ttl_s,
                prefix=f"{settings.redis_prefix}wm:",
            )
        else:
            working = InProcessWorkingMemory(ttl_s=settings.working_memory_ttl_s)
        return cls(
            long_term=LongTermMemory.from_settings(settings) if settings.memory_enabled else None,
            working=working,
            context=ContextFitter(settings, working),
        )

    def wake_writer(self) -> None:
        """A run memory was queued: the writer looks for it now."""
        if self.writer is not None:
            self.writer.wake()

    async def aclose(self) -> None:
        await self.working.aclose()


async def fit_context(
    memory: MemoryBackends | None,
    thread_id: str,
    system: SystemMessage,
    history: Sequence[BaseMessage],
    *,
    model_name: str,
    tail: Sequence[BaseMessage] = (),
    tools: Sequence[Any] | None = None,
) -> list[BaseMessage]:
    """The messages of one model call, fitted to the model's context budget (as is without memory)."""
    if memory is None:
        return [system, *history, *tail]
    return await memory.context.fit(thread_id, system, history, model_name=model_name, tail=tail, tools=tools)
