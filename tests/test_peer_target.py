"""benchmarks/peer_target.py, the plug-in of the shared peer harness: keel's guarded graph over the
harness's model, tools and checkpointer, one execution per call, exactly the model calls the run needs."""

from __future__ import annotations

import uuid

import pytest
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver

from benchmarks import peer_target
from keel.testing.fake_model import FakeChatModel, tool_call


@tool
async def echo(x: str) -> str:
    """Echo the input back."""
    return f"echo: {x}"


@tool
async def delete_records(table: str) -> str:
    """Delete a table's records."""
    raise AssertionError("never called: the policy asks first")


@pytest.mark.filterwarnings("ignore::keel.app.guarded_agent.NoCheckpointerWarning")
@pytest.mark.parametrize("saver", [None, "inmem"])
async def test_the_embedded_target_runs_keel_as_the_harness_calls_it(saver, tmp_path, monkeypatch):
    monkeypatch.setattr(peer_target, "_home", lambda: tmp_path)
    model = FakeChatModel(
        [tool_call("echo", "c0", x="step 0"), tool_call("echo", "c1", x="step 1"), "done after 2 tool calls"],
        model_name="fake-tool-calling",  # the name the harness's model is priced under
    )
    target = peer_target.make_embedded(
        InMemorySaver() if saver else None, model, [echo, delete_records], guards=True
    )
    try:
        config = {
            "configurable": {"thread_id": uuid.uuid4().hex},
            "recursion_limit": 100,
            "durability": "async",
        }
        out = await target.ainvoke({"messages": [{"role": "user", "content": "go"}]}, config)
        assert (out["status"], out["answer"]) == ("succeeded", "done after 2 tool calls")
        assert len(model.calls) == 3, "no plan call: the harness counts model calls"
        ex = await target.agent.keel_backends.records.get_execution(out["execution_id"])
        assert list(ex.tools_used) == ["echo", "echo"]
    finally:
        await target.agent.aclose()
        peer_target._AGENTS.clear()
