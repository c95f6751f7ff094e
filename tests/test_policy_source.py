"""One accessor of the policy in force: an edit of the policy file is seen by every reader at once (the
approver check of a decision, the role check of a run, the permission check), with no restart and no
reader holding an older matrix than another."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from keel.context import InvalidContext
from keel.testing.fake_model import tool_call

BEFORE = """version: 1
roles: [admin, user]
approvers: [admin]
rules:
  - {role: user, tool: "write_*", resource: "own:*", effect: ask}
  - {role: user, tool: "write_*", resource: "shared:*", effect: allow}
"""
AFTER = """version: 1
roles: [admin, user, auditor]
approvers: [admin, auditor]
rules:
  - {role: user, tool: "write_*", resource: "own:*", effect: ask}
  - {role: user, tool: "write_*", resource: "shared:*", effect: deny}
"""


def _bump(path: Path, text: str) -> None:
    """Write a new version of the file whose mtime surely differs from the last one."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(before + 10**9, before + 10**9))


async def test_a_policy_edit_reaches_the_approver_check_the_role_check_and_the_permission_check(
    make_keel, workspace: Path, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    _bump(policy, BEFORE)
    user, auditor = f"u-{uuid.uuid4().hex[:12]}", f"a-{uuid.uuid4().hex[:12]}"
    turns = [
        tool_call("write_file", "own", path="~/note.md", content="mine"),
        "written",
        "hello auditor",
        tool_call("write_file", "shared", path="shared/news.md", content="news"),
        "denied",
    ]
    async with make_keel(turns, policy_file=policy) as keel:
        paused = await keel.run("note this", user_id=user)
        assert paused.status == "awaiting_approval"
        with pytest.raises(InvalidContext, match="unknown role 'auditor'"):
            await keel.run("hello", user_id=auditor, role="auditor")

        _bump(policy, AFTER)  # no restart: `auditor` becomes a role and an approver, shared writes denied

        # The approver check of a decision: the new approver role may decide (before any node ran again).
        done = await keel.decide(
            paused.approval["approval_id"], "approve", approver=auditor, approver_role="auditor"
        )
        assert done.status == "succeeded"
        assert (workspace / "home" / user / "note.md").read_text() == "mine"
        # The role check of a new run.
        hello = await keel.run("hello", user_id=auditor, role="auditor")
        assert hello.status == "succeeded" and hello.answer == "hello auditor"
        # The permission check.
        denied = await keel.run("post the news", user_id=user)
        rows = await keel.records.audit_for(thread_id=denied.thread_id)
        assert [(r.event, r.decision, r.status) for r in rows][:1] == [("permission", "deny", "denied")]
        assert not (workspace / "shared" / "news.md").exists()
