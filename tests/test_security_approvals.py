"""Approval refusals when the graph is resumed directly (`Command(resume=...)`) and through `Keel.decide`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from langgraph.types import Command

from keel.context import RunContext
from keel.errors import Conflict, Forbidden
from keel.policies.matrix import PolicyMatrix
from keel.testing.fake_model import tool_call

ASK_ALL = (
    "version: 1\nroles: [user, admin]\nrules:\n  - {role: user, tool: '*', resource: 'own:*', effect: ask}\n"
)


async def _paused(keel, path: str = "~/draft.md"):
    out = await keel.run(f"delete {path}", user_id="alice")
    assert out.status == "awaiting_approval"
    ex = await keel.records.get_execution(out.execution_id)
    ctx = RunContext(user_id=ex.user_id, role=ex.role, tenant=ex.tenant, execution_id=ex.execution_id)
    return out, ctx


async def _resume(keel, out, ctx, **answer):
    payload = {"approver": "ops", "args_hash": out.approval["args_hash"], **answer}
    async for _ in keel.graph.astream(Command(resume=payload), keel._config(out.thread_id), context=ctx):
        pass


async def _tool_runs(keel, thread_id: str) -> list[str]:
    return [r.status for r in await keel.records.audit_for(thread_id=thread_id) if r.event == "tool_call"]


async def test_a_resume_for_other_args_is_refused_and_the_request_stays_pending(make_keel, workspace: Path):
    async with make_keel([tool_call("delete_file", path="~/draft.md"), "deleted"]) as keel:
        out, ctx = await _paused(keel)
        with pytest.raises(Conflict, match="made for other arguments"):
            await _resume(keel, out, ctx, decision="approve", args_hash="0" * 64)
        assert (workspace / "home/alice/draft.md").exists()
        assert (await keel.records.get_approval(out.approval["approval_id"])).status == "pending"
        assert await _tool_runs(keel, out.thread_id) == []
        audit = await keel.records.audit_for(thread_id=out.thread_id)
        refused = [(r.approver, r.status) for r in audit if r.event == "approval_refused"]
        assert refused == [("ops", "refused")]  # audited like a stale decision through keel
        done = await keel.decide(
            out.approval["approval_id"], "approve", approver="ops", approver_role="admin"
        )
        assert done.status == "succeeded" and not (workspace / "home/alice/draft.md").exists()


async def test_an_expired_request_is_not_executed_even_when_approved_directly(make_keel, workspace: Path):
    async with make_keel([tool_call("delete_file", path="~/draft.md"), "ok"], approval_ttl_s=0.05) as keel:
        keel.backends.policy.replace(PolicyMatrix.from_text(ASK_ALL))
        out, ctx = await _paused(keel)
        await asyncio.sleep(0.1)
        await _resume(keel, out, ctx, decision="approve")
        assert (workspace / "home/alice/draft.md").exists()
        row = await keel.records.get_approval(out.approval["approval_id"])
        assert row.status == "expired" and await _tool_runs(keel, out.thread_id) == []


async def test_an_edit_to_a_denied_resource_is_refused(make_keel, workspace: Path):
    async with make_keel([tool_call("delete_file", path="~/draft.md"), "ok"]) as keel:
        out, ctx = await _paused(keel)
        await _resume(keel, out, ctx, decision="edit", args={"path": "home/bob/secret.md"})
        assert (workspace / "home/bob/secret.md").exists() and (workspace / "home/alice/draft.md").exists()
        assert await _tool_runs(keel, out.thread_id) == []
        told = keel.fake_model.calls[-1]["messages"][-1]
        assert "edited call is denied by policy" in told.content
        decisions = [
            r for r in await keel.records.audit_for(thread_id=out.thread_id) if r.event == "approval_decision"
        ]
        assert [(d.decision, d.status, d.resource) for d in decisions] == [
            ("edit", "rejected", "own:draft.md")
        ]


async def test_double_approval_and_non_approvers_are_refused(make_keel, workspace: Path):
    async with make_keel([tool_call("delete_file", path="~/draft.md"), "ok"]) as keel:
        out, _ = await _paused(keel)
        approval_id = out.approval["approval_id"]
        for role in ("user", "viewer", "nobody"):
            with pytest.raises(Forbidden):
                await keel.decide(approval_id, "approve", approver="alice", approver_role=role)
        assert (await keel.records.get_approval(approval_id)).status == "pending"
        first, second = await asyncio.gather(
            keel.decide(approval_id, "approve", approver="ops", approver_role="admin"),
            keel.decide(approval_id, "approve", approver="ops2", approver_role="admin"),
            return_exceptions=True,
        )
        assert sorted(type(x).__name__ for x in (first, second)) == ["Conflict", "RunOutcome"]
        with pytest.raises(Conflict, match="already approved"):
            await keel.decide(approval_id, "approve", approver="ops", approver_role="admin")
        assert await _tool_runs(keel, out.thread_id) == ["ok"]  # the delete ran exactly once
        assert not (workspace / "home/alice/draft.md").exists()
