"""Approvals survive time and crashes: a late decision still runs the call, a recorded one is never stuck."""

from __future__ import annotations

import time
from pathlib import Path

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
        done = await keel.decide(out.approval["approval_id"], "approve", approver="ops", approver_role="admin")
        assert (done.status, done.terminated_reason) == ("succeeded", None)
        assert await _tool_runs(keel, out.thread_id) == ["ok"]
        assert not (workspace / "home/alice/draft.md").exists()
