"""Approvals survive time and crashes: a late decision still runs the call, a recorded one is never stuck."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from keel.approvals import ApprovalDecision, record_decision
from keel.errors import Conflict, NotFound
from keel.testing.fake_model import tool_call

DELETE = [tool_call("delete_file", path="~/draft.md"), "deleted"]


async def _tool_runs(keel, thread_id: str) -> list[str]:
    return [r.status for r in await keel.records.audit_for(thread_id=thread_id) if r.event == "tool_call"]


async def test_an_approval_given_after_the_run_timeout_still_runs_the_call(
    make_keel, workspace: Path, monkeypatch
) -> None:
    async with make_keel(DELETE, run_timeout_s=60, approval_ttl_s=7200) as keel:
        out = await keel.run("delete ~/draft.md", user_id="alice")
        assert out.status == "awaiting_approval"
        real = time.time
        monkeypatch.setattr(time, "time", lambda: real() + 3600)  # the approver answers an hour later
        done = await keel.decide(
            out.approval["approval_id"], "approve", approver="ops", approver_role="admin"
        )
        assert (done.status, done.terminated_reason) == ("succeeded", None)
        assert await _tool_runs(keel, out.thread_id) == ["ok"]
        assert not (workspace / "home/alice/draft.md").exists()


async def test_a_decision_recorded_whose_resume_never_ran_is_carried_out_by_resume(
    make_keel, workspace: Path
) -> None:
    async with make_keel(DELETE) as keel:
        out = await keel.run("delete ~/draft.md", user_id="alice")
        row = await keel.records.get_approval(out.approval["approval_id"])
        # The approving process died right after its UPDATE: the decision is recorded, nothing resumed.
        choice = ApprovalDecision(decision="approve", approver="ops", args_hash=row.args_hash)
        await record_decision(keel.records, keel.backends.policy.current(), row, choice, "admin")
        with pytest.raises(Conflict, match=f"keel resume {out.thread_id}"):
            await keel.decide(row.approval_id, "approve", approver="ops", approver_role="admin")
        done = await keel.resume(out.thread_id)
        assert (done.status, done.answer) == ("succeeded", "deleted")
        assert await _tool_runs(keel, out.thread_id) == ["ok"]
        assert not (workspace / "home/alice/draft.md").exists()
        with pytest.raises(Conflict, match="finished"):
            await keel.resume(out.thread_id)


async def test_approving_a_request_whose_thread_is_gone_records_nothing(make_keel, workspace: Path) -> None:
    async with make_keel(DELETE) as keel:
        out = await keel.run("delete ~/draft.md", user_id="alice")
        await keel.graph.checkpointer.adelete_thread(out.thread_id)
        with pytest.raises(NotFound, match="no longer waits"):
            await keel.decide(out.approval["approval_id"], "approve", approver="ops", approver_role="admin")
        assert (await keel.records.get_approval(out.approval["approval_id"])).status == "pending"
        assert (workspace / "home/alice/draft.md").exists()
        # Leave no pending request behind in the session's shared PostgreSQL database.
        await keel.records.decide_approval(out.approval["approval_id"], status="rejected", decided_by="test")
