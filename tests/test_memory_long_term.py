"""Long-term memory: one suite over a Chroma directory and a real Chroma server (`chroma run`).

Isolation is the point: with two users of 1,000 memories each, nothing user A asks for or deletes ever
touches user B, whatever A's input looks like. These tests use the hashing embedding (named: not a
language model) so 2,000 writes stay fast; recall quality with the shipped model is tested elsewhere.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from keel.memory.embeddings import HashingNgramEmbeddings
from keel.memory.long_term import LongTermMemory, chroma_client_factory
from keel.memory.types import InvalidMemory, InvalidMemoryScope, MemoryScope
from keel.settings import Settings

N = 1000
A = MemoryScope(user_id="alice", tenant="acme")
B = MemoryScope(user_id="bob", tenant="acme")
TOPICS = [
    "deploy",
    "invoice",
    "holiday",
    "database",
    "budget",
    "review",
    "oncall",
    "laptop",
    "travel",
    "lunch",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Chroma server from the `chroma` command that ships with chromadb; always stopped."""
    exe = Path(sys.executable).with_name("chroma")
    if not exe.exists():
        exe = Path(shutil.which("chroma") or "chroma")
    port = _free_port()
    path = tmp_path_factory.mktemp("chroma-server")
    log = (path / "server.log").open("wb")
    proc = subprocess.Popen(
        [str(exe), "run", "--path", str(path / "data"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chroma run did not start: {(path / 'server.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module", params=["directory", "server"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> LongTermMemory:
    """Two users with 1,000 memories each, in a Chroma directory or on a Chroma server."""
    home = tmp_path_factory.mktemp(f"ltm-{request.param}")
    url = request.getfixturevalue("chroma_server") if request.param == "server" else None
    settings = Settings(home=home, chroma_url=url, embeddings="hashing")
    memory = LongTermMemory(HashingNgramEmbeddings(), chroma_client_factory(settings))
    for scope in (A, B):
        texts = [f"{scope.user_id} note {i} about {TOPICS[i % 10]} item {i}" for i in range(N)]
        memory.remember_many_sync(scope, texts, kind="note", metadata={"source": "fixture"})
    return memory


def test_each_user_has_exactly_their_memories(store: LongTermMemory) -> None:
    assert store.count_sync(A) == N and store.count_sync(B) == N
    assert {m.user_id for m in store.list_sync(A, limit=5000)} == {"alice"}
    assert len(store.list_sync(B, limit=5000)) == N


def test_queries_never_return_another_users_memory(store: LongTermMemory) -> None:
    for i in range(0, N, 50):
        # the query names bob's exact text: alice still only gets alice's memories
        found = store.search_sync(A, f"bob note {i} about {TOPICS[i % 10]} item {i}", k=10)
        assert len(found) == 10
        assert all(m.user_id == "alice" and m.text.startswith("alice ") for m in found)
    best = store.search_sync(B, "bob note 123 about database item 123", k=3)
    assert best[0].text == "bob note 123 about database item 123"


@pytest.mark.parametrize(
    ("user", "tenant"),
    [
        ("", "acme"),
        ("*", "acme"),
        ("bob*", "acme"),
        ("%", "acme"),
        (".*", "acme"),
        ("alice", ""),
        ("alice", "*"),
        ('{"$ne": "x"}', "acme"),
        ("$or", "acme"),
        ("alice bob", "acme"),
        (" ", "acme"),
    ],
)
def test_crafted_scopes_are_refused(user: str, tenant: str) -> None:
    with pytest.raises(InvalidMemoryScope, match="memory scope"):
        MemoryScope(user_id=user, tenant=tenant)


def test_non_scope_objects_are_refused(store: LongTermMemory) -> None:
    class Sneaky:
        user_id, tenant = "alice", "acme"

        def where(self) -> dict:
            return {}

    for bad in (Sneaky(), {"user_id": "alice"}, None):
        with pytest.raises(InvalidMemoryScope):
            store.search_sync(bad, "deploy", k=3)  # type: ignore[arg-type]
        with pytest.raises(InvalidMemoryScope):
            store.forget_sync(bad)  # type: ignore[arg-type]
    assert store.count_sync(B) == N


@pytest.mark.parametrize(
    "metadata",
    [
        {"$or": [{"user_id": "bob"}]},
        {"user_id": "bob"},
        {"tenant": "other"},
        {"$and": "x"},
        {"kind": "x"},
        {"ok": {"$ne": 1}},
        {"ok": ["a"]},
        {"": "x"},
    ],
)
def test_smuggled_metadata_is_refused(store: LongTermMemory, metadata: dict) -> None:
    with pytest.raises(InvalidMemory, match="metadata"):
        store.remember_sync(A, "an innocent looking memory", metadata=metadata)
    assert store.count_sync(A) == N and store.count_sync(B) == N


def test_delete_by_another_user_never_removes(store: LongTermMemory) -> None:
    victim = store.search_sync(B, "bob note 7 about laptop item 7", k=1)[0]
    assert store.delete_sync(A, victim.memory_id) is False
    for bad in ("", "*", "m-*", "%", victim.memory_id + "' OR 1=1"):
        with pytest.raises(InvalidMemory, match="memory id"):
            store.delete_sync(A, bad)
    assert store.count_sync(B) == N
    assert store.search_sync(B, victim.text, k=1)[0].memory_id == victim.memory_id


def test_writes_are_deduplicated_and_scoped(store: LongTermMemory) -> None:
    first = store.remember_sync(A, "Alice   prefers summaries in French")
    again = store.remember_sync(A, "alice prefers summaries in french")
    assert first.memory_id == again.memory_id and store.count_sync(A) == N + 1
    other = store.remember_sync(B, "Alice prefers summaries in French")
    assert other.memory_id != first.memory_id
    assert store.delete_sync(A, first.memory_id) is True
    assert store.delete_sync(B, other.memory_id) is True
    assert (store.count_sync(A), store.count_sync(B)) == (N, N)
    with pytest.raises(InvalidMemory, match="text"):
        store.remember_sync(A, "   ")


def test_forget_deletes_every_memory_of_one_user_only(store: LongTermMemory) -> None:
    other_tenant = MemoryScope(user_id="alice", tenant="globex")
    store.remember_sync(other_tenant, "alice at globex: deploy on Mondays")
    assert store.forget_sync(A) == N
    assert store.count_sync(A) == 0 and store.search_sync(A, "deploy", k=5) == []
    assert store.count_sync(B) == N
    assert [m.text for m in store.search_sync(other_tenant, "deploy", k=5)] == [
        "alice at globex: deploy on Mondays"
    ]
    assert store.forget_sync(A) == 0
