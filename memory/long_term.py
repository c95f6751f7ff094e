"""Long-term memory: per-user memories in Chroma, every read and delete scoped inside this module.

Each (tenant, user) has its own Chroma collection, named from a digest of the validated `MemoryScope`, so a
query can only ever search that user's vectors (and runs unfiltered, which keeps it fast: a metadata filter
costs ~50 ms at 10k memories). Gets and deletes also carry the scope's `where` filter (user AND tenant,
equality only), built here; callers pass no filter, and metadata they attach never reaches a `where`. Every
row read back is re-checked against the scope. Writes are de-duplicated: a memory's id is a digest of
(tenant, user, text), so storing the same text twice keeps one.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from keel.memory.chroma import chroma_client_factory
from keel.memory.embeddings import ChromaEmbeddingFunction, Embedder, embedder_from_settings
from keel.memory.types import InvalidMemory, InvalidMemoryScope, Memory, MemoryScope
from keel.settings import Settings

__all__ = ["LongTermMemory", "chroma_client_factory"]

_META_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_RESERVED = frozenset({"user_id", "tenant", "kind", "created_at"})
_MEMORY_ID = re.compile(r"^m-[0-9a-f]{32}$")
MAX_TEXT_CHARS = 4000
_BATCH = 1000
_CACHED_COLLECTIONS = 1024


def _memory_id(scope: MemoryScope, text: str) -> str:
    key = f"{scope.tenant}\x00{scope.user_id}\x00{' '.join(text.split()).lower()}"
    return "m-" + hashlib.sha256(key.encode()).hexdigest()[:32]


def _clean_metadata(metadata: Mapping[str, Any] | None) -> dict[str, str | int | float | bool]:
    out: dict[str, str | int | float | bool] = {}
    for key, value in (metadata or {}).items():
        if not isinstance(key, str) or not _META_KEY.match(key) or key in _RESERVED:
            raise InvalidMemory(f"metadata key {key!r} is not allowed (reserved, or not a plain name)")
        if not isinstance(value, str | int | float | bool):
            raise InvalidMemory(f"metadata {key!r} must be a string, number or boolean")
        out[key] = value
    return out


class LongTermMemory:
    """Per-user memories in one Chroma collection per embedding model. Blocking calls run in a thread."""

    def __init__(self, embedder: Embedder, client_factory: Callable[[], Any], *, where: str = "") -> None:
        self.embedder = embedder
        self.where = where
        """Where the memories live (a directory or a URL), for operators."""
        self.collection_prefix = f"keel-mem-{embedder.name}-"
        self._factory = client_factory
        self._client: Any = None
        self._collections: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def collection_name(self, scope: MemoryScope) -> str:
        """The scope's own collection: embedder name and a digest of (tenant, user)."""
        digest = hashlib.sha256(f"{scope.tenant}\x00{scope.user_id}".encode()).hexdigest()[:32]
        return self.collection_prefix + digest

    @classmethod
    def from_settings(cls, settings: Settings) -> LongTermMemory:
        where = settings.chroma_url or str((settings.home / "chroma").resolve())
        return cls(embedder_from_settings(settings), chroma_client_factory(settings), where=where)

    # --- public, async -------------------------------------------------------------------------------
    async def remember(
        self, scope: MemoryScope, text: str, *, kind: str = "note", metadata: Mapping[str, Any] | None = None
    ) -> Memory:
        """Store a memory of the scope's user (once: the same text again returns the stored one)."""
        return await asyncio.to_thread(self.remember_sync, scope, text, kind=kind, metadata=metadata)

    async def remember_each(
        self, entries: Sequence[tuple[MemoryScope, str, Mapping[str, Any]]], *, kind: str = "note"
    ) -> list[Memory]:
        """Store memories of several users, (scope, text, metadata) each: new texts embedded in one call."""
        return await asyncio.to_thread(self.remember_each_sync, entries, kind=kind)

    async def search(self, scope: MemoryScope, query: str, k: int = 3) -> list[Memory]:
        """The user's `k` memories most similar to `query`, closest first."""
        return await asyncio.to_thread(self.search_sync, scope, query, k)

    async def list(self, scope: MemoryScope, limit: int = 50) -> list[Memory]:
        """The user's memories, newest first."""
        return await asyncio.to_thread(self.list_sync, scope, limit)

    async def delete(self, scope: MemoryScope, memory_id: str) -> bool:
        """Delete one memory of the user; False when the user has no memory with that id."""
        return await asyncio.to_thread(self.delete_sync, scope, memory_id)

    async def forget(self, scope: MemoryScope) -> int:
        """Delete every memory of the user (right to erasure); returns how many were deleted."""
        return await asyncio.to_thread(self.forget_sync, scope)

    async def count(self, scope: MemoryScope | None = None) -> int:
        """Memories of the user, or of everyone when no scope is given (operators' health count)."""
        return await asyncio.to_thread(self.count_sync, scope)

    # --- the same, blocking --------------------------------------------------------------------------
    def remember_sync(
        self, scope: MemoryScope, text: str, *, kind: str = "note", metadata: Mapping[str, Any] | None = None
    ) -> Memory:
        return self.remember_many_sync(scope, [text], kind=kind, metadata=metadata)[0]

    def remember_each_sync(
        self, entries: Sequence[tuple[MemoryScope, str, Mapping[str, Any]]], *, kind: str = "note"
    ) -> list[Memory]:
        new: dict[int, str] = {}
        for i, (scope, text, _) in enumerate(entries):
            scope, cleaned = self._check(scope), " ".join(str(text).split())
            col = self._col(scope)
            mid = _memory_id(scope, cleaned)
            if col is None or not col.get(ids=[mid], where=scope.where(), include=[])["ids"]:
                new[i] = cleaned
        vectors = self.embedder.embed_documents(list(new.values())) if new else None
        at = {i: n for n, i in enumerate(new)}
        return [
            self.remember_many_sync(
                scope,
                [text],
                kind=kind,
                metadata=metadata,
                embeddings=None if vectors is None or i not in at else vectors[at[i] : at[i] + 1],
            )[0]
            for i, (scope, text, metadata) in enumerate(entries)
        ]

    def remember_many_sync(
        self,
        scope: MemoryScope,
        texts: Sequence[str],
        *,
        kind: str = "note",
        metadata: Mapping[str, Any] | None = None,
        embeddings: np.ndarray | None = None,
    ) -> list[Memory]:
        """Store several memories of one user in batches (precomputed `embeddings` are used as given)."""
        scope = self._check(scope)
        meta = _clean_metadata(metadata)
        if not _META_KEY.match(kind):
            raise InvalidMemory(f"memory kind {kind!r} is not a plain name")
        cleaned = [" ".join(str(t).split()) for t in texts]
        if any(not t for t in cleaned):
            raise InvalidMemory("a memory needs some text")
        if any(len(t) > MAX_TEXT_CHARS for t in cleaned):
            raise InvalidMemory(f"a memory is at most {MAX_TEXT_CHARS} characters")
        col = self._col(scope, create=True)
        now = time.time()
        ids = [_memory_id(scope, t) for t in cleaned]
        known = set(col.get(ids=list(dict.fromkeys(ids)), where=scope.where(), include=[])["ids"])
        todo: list[int] = []
        for i, mid in enumerate(ids):
            if mid not in known:
                known.add(mid)
                todo.append(i)
        if todo:
            vectors = (
                embeddings[todo]
                if embeddings is not None
                else self.embedder.embed_documents([cleaned[i] for i in todo])
            )
            for start in range(0, len(todo), _BATCH):
                chunk = todo[start : start + _BATCH]
                col.upsert(
                    ids=[ids[i] for i in chunk],
                    embeddings=np.asarray(vectors[start : start + _BATCH], dtype=np.float32),
                    documents=[cleaned[i] for i in chunk],
                    metadatas=[
                        {
                            **meta,
                            "user_id": scope.user_id,
                            "tenant": scope.tenant,
                            "kind": kind,
                            "created_at": now,
                        }
                        for _ in chunk
                    ],
                )
        return [
            Memory(
                memory_id=mid,
                user_id=scope.user_id,
                tenant=scope.tenant,
                text=t,
                kind=kind,
                created_at=now,
                metadata=meta,
            )
            for mid, t in zip(ids, cleaned, strict=True)
        ]

    def search_sync(self, scope: MemoryScope, query: str, k: int = 3) -> list[Memory]:
        scope = self._check(scope)
        if not query.strip() or k <= 0:
            return []
        return self.search_vector_sync(scope, self.embedder.embed_query(query), k)

    def search_vector_sync(self, scope: MemoryScope, vector: np.ndarray, k: int = 3) -> list[Memory]:
        """The vector query alone (the benchmark times it apart from the embedding)."""
        scope = self._check(scope)
        col = self._col(scope)
        if col is None:
            return []
        res = col.query(
            query_embeddings=[np.asarray(vector, dtype=np.float32)],
            n_results=k,
            include=["documents", "metadatas", "distances"],
        )
        rows = zip(res["ids"][0], res["documents"][0], res["metadatas"][0], res["distances"][0], strict=True)
        return [m for m in (self._row(scope, *r) for r in rows) if m is not None]

    def list_sync(self, scope: MemoryScope, limit: int = 50) -> list[Memory]:
        scope = self._check(scope)
        col = self._col(scope)
        if col is None:
            return []
        res = col.get(where=scope.where(), include=["documents", "metadatas"])
        rows = zip(res["ids"], res["documents"], res["metadatas"], strict=True)
        found = [m for m in (self._row(scope, i, d, md) for i, d, md in rows) if m is not None]
        found.sort(key=lambda m: (-m.created_at, m.memory_id))
        return found[:limit]

    def delete_sync(self, scope: MemoryScope, memory_id: str) -> bool:
        scope = self._check(scope)
        if not isinstance(memory_id, str) or not _MEMORY_ID.fullmatch(memory_id):
            raise InvalidMemory(f"memory id {memory_id!r} is not a keel memory id (m-<32 hex>)")
        col = self._col(scope)
        if col is None or not col.get(ids=[memory_id], where=scope.where(), include=[])["ids"]:
            return False
        col.delete(ids=[memory_id], where=scope.where())
        return True

    def forget_sync(self, scope: MemoryScope) -> int:
        scope = self._check(scope)
        col = self._col(scope)
        if col is None:
            return 0
        ids = col.get(where=scope.where(), include=[])["ids"]
        for start in range(0, len(ids), _BATCH):
            col.delete(ids=ids[start : start + _BATCH], where=scope.where())
        return len(ids)

    def count_sync(self, scope: MemoryScope | None = None) -> int:
        if scope is not None:
            col = self._col(self._check(scope))
            return 0 if col is None else len(col.get(where=scope.where(), include=[])["ids"])
        client = self._open()
        return sum(
            int(client.get_collection(c.name).count())
            for c in client.list_collections()
            if c.name.startswith(self.collection_prefix)
        )

    # --- internals -----------------------------------------------------------------------------------
    @staticmethod
    def _check(scope: MemoryScope) -> MemoryScope:
        if type(scope) is not MemoryScope:
            raise InvalidMemoryScope(f"long-term memory needs a MemoryScope, got {type(scope).__name__}")
        return MemoryScope(user_id=scope.user_id, tenant=scope.tenant)  # re-validated

    def _open(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    from chromadb.utils.embedding_functions import register_embedding_function

                    from keel.memory.embeddings import ChromaEmbeddingFunction

                    # Chroma rebuilds a collection's embedding function by name when it reads one back.
                    register_embedding_function(ChromaEmbeddingFunction)
                    self._client = self._factory()
        return self._client

    def _col(self, scope: MemoryScope, *, create: bool = False) -> Any | None:
        """The scope's collection (None when it has none yet and `create` is off)."""
        from chromadb.errors import NotFoundError

        name = self.collection_name(scope)
        client = self._open()
        with self._lock:
            col = self._collections.get(name)
            if col is not None:
                self._collections.move_to_end(name)
                return col
        function = ChromaEmbeddingFunction(self.embedder)
        if create:
            col = client.get_or_create_collection(
                name,
                embedding_function=function,
                configuration={"hnsw": {"space": "cosine"}},
                metadata={"embedder": self.embedder.name, "user_id": scope.user_id, "tenant": scope.tenant},
            )
        else:
            try:
                col = client.get_collection(name, embedding_function=function)
            except NotFoundError:
                return None
        with self._lock:
            self._collections[name] = col
            while len(self._collections) > _CACHED_COLLECTIONS:
                self._collections.popitem(last=False)
        return col

    @staticmethod
    def _row(
        scope: MemoryScope,
        mid: str,
        doc: str | None,
        md: Mapping[str, Any] | None,
        distance: float | None = None,
    ) -> Memory | None:
        md = dict(md or {})
        if md.get("user_id") != scope.user_id or md.get("tenant") != scope.tenant:
            return None  # defence in depth: never hand out another user's memory
        extra = {k: v for k, v in md.items() if k not in _RESERVED}
        return Memory(
            memory_id=mid,
            user_id=scope.user_id,
            tenant=scope.tenant,
            text=doc or "",
            kind=str(md.get("kind", "note")),
            created_at=float(md.get("created_at", 0.0)),
            metadata=extra,
            distance=None if distance is None else float(distance),
        )
