"""Proofs that recall never crosses a tenant: the same user id in another tenant is another person."""

from __future__ import annotations


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
