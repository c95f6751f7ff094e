"""Bad data never wedges a run: NUL in a file, a task, a plan or an answer is stored, visibly replaced."""

from __future__ import annotations

import pytest

from keel.testing.fake_model import tool_call
from keel.textsafe import REPLACEMENT


async def test_nul_in_file_task_plan_and_answer_is_stored_safely(make_keel, workspace):
    (workspace / "shared" / "blob.txt").write_text("head\x00tail\n", encoding="utf-8")
    turns = [tool_call("read_file", call_id="read-1", path="shared/blob.txt"), "answer\x00end"]
    async with make_keel(turns) as keel:
        keel.fake_model.plan = "1. read\x00it"
        out = await keel.run("read blob\x00.txt", user_id="alice")
        assert (out.status, out.answer) == ("succeeded", f"answer{REPLACEMENT}end")

        ex = await keel.records.get_execution(out.execution_id)
        assert ex.status == "succeeded"
        assert (ex.task, ex.answer) == (f"read blob{REPLACEMENT}.txt", f"answer{REPLACEMENT}end")
        result = await keel.records.get_tool_result(out.thread_id, "read-1")
        assert result.status == "ok" and f"head{REPLACEMENT}tail" in result.output
        audit = await keel.records.audit_for(thread_id=out.thread_id)
        assert [(r.event, r.status) for r in audit if r.event == "tool_call"] == [("tool_call", "ok")]

        state = (await keel.graph.aget_state({"configurable": {"thread_id": out.thread_id}})).values
        assert state["plan"] == f"1. read{REPLACEMENT}it"
        assert state["task"] == f"read blob{REPLACEMENT}.txt"


async def test_nul_in_tool_args_and_approval_reason_is_recorded(make_keel):
    """A write whose content holds NUL: the audit row of the call (its args) is stored and readable."""
    turns = [tool_call("write_file", call_id="w-1", path="~/n.md", content="a\x00b"), "written"]
    async with make_keel(turns) as keel:
        out = await keel.run("write it", user_id="alice")
        assert out.status in ("succeeded", "awaiting_approval")
        rows = await keel.records.audit_for(thread_id=out.thread_id)
        assert rows and all("\x00" not in repr(r.args) for r in rows)
        assert any(REPLACEMENT in repr(r.args) for r in rows)


@pytest.mark.parametrize("text", ["x\x00y", "x\ud800y"])
def test_safe_text_replaces_visibly(text):
    from keel.textsafe import safe_text

    assert safe_text(text) == f"x{REPLACEMENT}y"
