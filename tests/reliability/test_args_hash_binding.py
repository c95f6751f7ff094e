"""An approval binds to the args its approver was shown: `Keel.decide` with another args hash is refused
before anything is recorded, and the run stays paused (the CLI and server paths: tests/test_cli.py and
tests/test_server.py send a stale hash the same way)."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.errors import Conflict
from keel.testing.fake_model import tool_call


async def test_a_decision_for_other_args_is_refused_and_records_nothing(make_keel, workspace: Path):
    async with make_keel([tool_call("delete_file", path="~/draft.md"), "Deleted."]) as keel:
        out = await keel.run("delete my draft", user_id="alice")
        approval_id = out.approval["approval_id"]
        with pytest.raises(Conflict, match="made for other arguments"):
            await keel.decide(
                approval_id, "approve", approver="ops", approver_role="admin", args_hash="0" * 64
            )
        assert (await keel.records.get_approval(approval_id)).status == "pending"
        assert (workspace / "home/alice/draft.md").exists()
        audit = await keel.records.audit_for(thread_id=out.thread_id)
        refused = [r for r in audit if r.event == "approval_refused"]
        assert [(r.approver, r.status) for r in refused] == [("ops", "refused")]

        done = await keel.decide(
            approval_id, "approve", approver="ops", approver_role="admin", args_hash=out.approval["args_hash"]
        )
        assert done.status == "succeeded" and not (workspace / "home/alice/draft.md").exists()
