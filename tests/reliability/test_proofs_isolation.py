"""Proofs that recall and memory never cross a tenant: one user id in another tenant is another person."""

from __future__ import annotations

from pathlib import Path

from keel.memory.embeddings import HashingNgramEmbeddings
from keel.memory.long_term import LongTermMemory, chroma_client_factory
from keel.memory.types import MemoryScope
from keel.settings import Settings


def _system_prompt(call: dict) -> str:
    return call["messages"][0].content


async def test_recall_of_earlier_runs_stays_inside_the_tenant(make_keel) -> None:
    async with make_keel(["Noted.", "Hello."]) as keel:
        await keel.run("the acme merger code word is BLUEFIN", user_id="alice", tenant="acme")
        other = await keel.run("hello", user_id="alice", tenant="globex")
        assert other.status == "succeeded"
        prompt = _system_prompt(keel.fake_model.calls[-1])
        state = await keel.graph.aget_state({"configurable": {"thread_id": other.thread_id}})
        assert not [r for r in state.values["recalled"] if "BLUEFIN" in r]
        assert "BLUEFIN" not in prompt


async def test_recall_of_earlier_runs_brings_back_the_same_tenants_task(make_keel) -> None:
    """The control: without it the test above would pass with recall switched off entirely."""
    async with make_keel(["Noted.", "Hello."]) as keel:
        await keel.run("the acme merger code word is BLUEFIN", user_id="alice", tenant="acme")
        again = await keel.run("hello", user_id="alice", tenant="acme")
        state = await keel.graph.aget_state({"configurable": {"thread_id": again.thread_id}})
        assert [r for r in state.values["recalled"] if "earlier task" in r and "BLUEFIN" in r]


def _memory(tmp_path: Path) -> LongTermMemory:
    return LongTermMemory(HashingNgramEmbeddings(), chroma_client_factory(Settings(home=tmp_path)))


def test_the_same_user_id_in_two_tenants_has_two_separate_memories(tmp_path: Path) -> None:
    memory = _memory(tmp_path)
    acme, globex = MemoryScope(user_id="alice", tenant="acme"), MemoryScope(user_id="alice", tenant="globex")
    memory.remember_sync(acme, "the acme merger code word is BLUEFIN")
    assert memory.collection_name(acme) != memory.collection_name(globex)
    assert memory.search_sync(globex, "merger code word", k=5) == []
    assert [m.text for m in memory.search_sync(acme, "merger code word", k=5)] == [
        "the acme merger code word is BLUEFIN"
    ]


def test_a_foreign_row_inside_a_users_collection_is_never_handed_out(tmp_path: Path) -> None:
    """Defence in depth: every row read back is re-checked against the scope, whatever the store holds."""
    memory = _memory(tmp_path)
    alice = MemoryScope(user_id="alice", tenant="acme")
    memory.remember_sync(alice, "alice likes tea")
    col = memory._col(alice)
    planted = {"user_id": "mallory", "tenant": "acme", "kind": "note", "created_at": 1.0}
    col.add(ids=["m-" + "f" * 32], documents=["mallory's payroll password"], metadatas=[planted])
    found = memory.search_sync(alice, "payroll password", k=5)
    assert [m.text for m in found] == ["alice likes tea"]
