"""Proof that an approver's edit is checked against the policy in force when it is applied."""

from __future__ import annotations

import os
from pathlib import Path

from langgraph.types import Command

from keel.context import RunContext
from keel.testing.fake_model import tool_call

_BEFORE = (
    "version: 1\nroles: [user, admin]\napprovers: [admin]\nrules:\n"
    "  - {role: user, tool: 'delete_*', resource: 'own:*', effect: ask}\n"
)
_AFTER = (
    "version: 1\nroles: [user, admin]\napprovers: [admin]\nrules:\n"
    "  - {role: user, tool: 'delete_*', resource: 'own:draft.md', effect: ask}\n"
)


async def test_an_edit_is_refused_when_the_policy_changed_to_deny_it_while_waiting(
    make_keel, workspace: Path, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(_BEFORE, encoding="utf-8")
    (workspace / "home/alice/notes.md").write_text("keep me", encoding="utf-8")
    turns = [tool_call("delete_file", path="~/draft.md"), "ok"]
    async with make_keel(turns, policy_file=policy) as keel:
        out = await keel.run("delete ~/draft.md", user_id="alice")
        assert out.status == "awaiting_approval"
        policy.write_text(_AFTER, encoding="utf-8")  # deleting other own files is now denied
        stat = policy.stat()
        os.utime(policy, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
        ex = await keel.records.get_execution(out.execution_id)
        ctx = RunContext(user_id=ex.user_id, role=ex.role, tenant=ex.tenant, execution_id=ex.execution_id)
        answer = {
            "approver": "ops",
            "args_hash": out.approval["args_hash"],
            "decision": "edit",
            "args": {"path": "~/notes.md"},
        }
        async for _ in keel.graph.astream(Command(resume=answer), keel._config(out.thread_id), context=ctx):
            pass
        assert (workspace / "home/alice/notes.md").exists()
        runs = [r for r in await keel.records.audit_for(thread_id=out.thread_id) if r.event == "tool_call"]
        assert runs == []
        told = keel.fake_model.calls[-1]["messages"][-1]
        assert "edited call is denied by policy" in told.content
