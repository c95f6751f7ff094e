"""Value objects of keel's memory: whose memories (`MemoryScope`) and one memory (`Memory`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from keel.ids import ID_RULE, is_id

__all__ = ["MemoryScope", "Memory", "InvalidMemoryScope", "InvalidMemory"]


class InvalidMemoryScope(ValueError):
    """A user or tenant id that cannot scope a memory query (empty, wildcard, operator, …)."""


class InvalidMemory(ValueError):
    """A memory that cannot be stored: empty text, reserved or malformed metadata."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryScope:
    """Whose memories: one user of one tenant. Every read and delete of long-term memory needs one."""

    user_id: str
    tenant: str = "default"

    def __post_init__(self) -> None:
        for name in ("user_id", "tenant"):
            value = getattr(self, name)
            if not is_id(value):
                raise InvalidMemoryScope(f"memory scope {name}={value!r} is invalid: {ID_RULE}")

    def where(self) -> dict[str, Any]:
        """The Chroma filter for exactly this scope: both fields, equality only."""
        return {"$and": [{"user_id": {"$eq": self.user_id}}, {"tenant": {"$eq": self.tenant}}]}


@dataclass(frozen=True, slots=True, kw_only=True)
class Memory:
    """One long-term memory of a user."""

    memory_id: str
    user_id: str
    tenant: str
    text: str
    kind: str = "note"
    created_at: float = 0.0
    metadata: dict[str, str | int | float | bool] = field(default_factory=dict)
    distance: float | None = None
    """Cosine distance to the query (search results only; smaller is closer)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "memory_id": self.memory_id,
            "user_id": self.user_id,
            "tenant": self.tenant,
            "kind": self.kind,
            "text": self.text,
            "created_at": self.created_at,
            "metadata": self.metadata,
            "distance": self.distance,
        }
