"""Every approval decision and every refused attempt to decide is audited, the approver in its own column."""

from __future__ import annotations

from pathlib import Path

import pytest
from langgraph.types import Command

from keel.context import RunContext
from keel.errors import Forbidden
from keel.testing.fake_model import tool_call

DELETE = [tool_call("delete_file", path="~/draft.md"), "deleted"]


async def _approval_rows(keel, thread_id: str) -> list[tuple[str, str | None, str | None]]:
    rows = await keel.records.audit_for(thread_id=thread_id)
    return [(r.event, r.approver, r.decision) for r in rows if r.event.startswith("approval_")]


async def test_decisions_and_refused_attempts_are_audited_with_the_approver(make_keel, workspace: Path):
    async with make_keel(DELETE) as keel:
        out = await keel.run("delete ~/draft.md", user_id="alice")
        approval_id = out.approval["approval_id"]
        with pytest.raises(Forbidden, match="may not decide approvals"):
            await keel.decide(approval_id, "approve", approver="mallory", approver_role="user")
        done = await keel.decide(approval_id, "approve", approver="ops", approver_role="admin")
        assert done.status == "succeeded"
        assert await _approval_rows(keel, out.thread_id) == [
            ("approval_refused", "mallory", "approve"),
            ("approval_decision", "ops", "approve"),
        ]
        assert (await keel.records.verify_audit()).ok


async def test_a_raw_resume_by_a_non_approver_on_the_server_is_refused_and_audited(
    make_keel, workspace: Path
):
    async with make_keel(DELETE) as keel:
        out = await keel.run("delete ~/draft.md", user_id="alice")
        ex = await keel.records.get_execution(out.execution_id)
        ctx = RunContext(user_id="alice", role="user", tenant=ex.tenant, execution_id=ex.execution_id)
        # What LangGraph Server puts in the config of a run made by the authenticated requester herself.
        config = {
            **keel._config(out.thread_id),
            "configurable": {
                "thread_id": out.thread_id,
                "langgraph_auth_user": {"identity": "alice", "role": "user", "tenant": ex.tenant},
            },
        }
        resume = Command(resume={"decision": "approve", "approver": "boss"})
        with pytest.raises(Forbidden, match="may not decide approvals"):
            async for _ in keel.graph.astream(resume, config, context=ctx):
                pass
        assert (workspace / "home/alice/draft.md").exists()
        assert (await keel.records.get_approval(out.approval["approval_id"])).status == "pending"
        assert await _approval_rows(keel, out.thread_id) == [("approval_refused", "alice", "approve")]
        assert (await keel.records.verify_audit()).ok
        # The thread is still paused, not broken: an approver's decision carries it on.
        done = await keel.decide(
            out.approval["approval_id"], "approve", approver="ops", approver_role="admin"
        )
        assert done.status == "succeeded" and not (workspace / "home/alice/draft.md").exists()
