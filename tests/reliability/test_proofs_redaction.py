"""Proof that a secret met in a run (task, tool output, a refused call, the answer) is stored nowhere."""

from __future__ import annotations

from pathlib import Path

from keel.testing.fake_model import tool_call

SECRET = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAB7CD0EF"


async def test_a_canary_secret_is_redacted_from_records_audit_and_state(make_keel, workspace: Path) -> None:
    (workspace / "shared" / "keys.md").write_text(f"openai key: {SECRET}\n", encoding="utf-8")
    turns = [
        tool_call("read_file", path="shared/keys.md"),
        tool_call("read_file", path=f"/etc/{SECRET}"),
        f"The key is {SECRET}.",
    ]
    async with make_keel(turns) as keel:
        out = await keel.run(f"use the key {SECRET} to read shared/keys.md", user_id="alice")
        assert out.status == "succeeded"
        ex = await keel.records.get_execution(out.execution_id)
        assert "[REDACTED]" in ex.task and SECRET not in ex.task
        assert "[REDACTED]" in ex.answer and SECRET not in ex.answer
        state = await keel.graph.aget_state({"configurable": {"thread_id": out.thread_id}})
        tool_outputs = [m.content for m in state.values["messages"] if m.type == "tool"]
        assert any("openai key: [REDACTED]" in c for c in tool_outputs)
        assert not [c for c in tool_outputs if SECRET in c]
        rows = await keel.records.audit_for(thread_id=out.thread_id)
        assert [r for r in rows if r.decision == "invalid"]  # the refused call is audited...
        assert not [r for r in rows if SECRET in repr(r.as_dict())]  # ...without the secret
