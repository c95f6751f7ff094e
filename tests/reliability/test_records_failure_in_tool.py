"""A records failure inside the tool node reaches the model as a tool error; nothing is left running."""

from __future__ import annotations

import pytest
from langchain_core.messages import ToolMessage
from sqlalchemy.exc import OperationalError

from keel.records import RecordsUnavailable
from keel.testing.fake_model import tool_call


@pytest.mark.parametrize(
    "failure",
    [
        RecordsUnavailable("records database is unavailable: connection refused"),
        OperationalError("INSERT INTO tool_results", {}, Exception("server closed the connection")),
    ],
    ids=["unavailable", "sqlalchemy"],
)
async def test_records_failure_during_the_result_write_is_a_tool_error(make_keel, failure, monkeypatch):
    turns = [tool_call("read_file", call_id="r-1", path="shared/handbook.md"), "I could not record it."]
    async with make_keel(turns) as keel:

        async def broken(*_a, **_k):
            raise failure

        monkeypatch.setattr(keel.records, "save_tool_result", broken)
        out = await keel.run("read the handbook", user_id="alice")
        # The model answered, but its only tool call failed: not a plain success.
        assert (out.status, out.terminated_reason) == ("failed", "tools_refused")
        assert out.answer == "I could not record it."
        assert out.path.count("tool") == 1 and out.path[-1] == "finalize"

        seen = keel.fake_model.calls[-1]["messages"]
        results = [m for m in seen if isinstance(m, ToolMessage)]
        assert [(m.tool_call_id, m.status) for m in results] == [("r-1", "error")]
        assert "could not be recorded" in results[0].content

        ex = await keel.records.get_execution(out.execution_id)
        assert ex.status == "failed" and list(ex.tools_failed) == ["read_file"]
