"""Every path through the graph, on both storage profiles: the nodes taken, the rows written, the state."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import BaseModel

from keel.context import InvalidContext
from keel.policies.matrix import PolicyMatrix
from keel.testing.fake_model import Slow, tool_call
from keel.tools.registry import default_registry
from keel.tools.spec import ToolSpec


async def audit(keel, thread_id: str) -> list[tuple]:
    return [
        (r.event, r.tool, r.decision, r.status) for r in await keel.records.audit_for(thread_id=thread_id)
    ]


async def test_direct_answer(make_keel):
    async with make_keel(["Hello, Alice."]) as keel:
        out = await keel.run("say hello", user_id="alice")
        assert out.path == ["recall", "plan", "decide", "finalize"]
        assert (out.status, out.answer, out.terminated_reason) == ("succeeded", "Hello, Alice.", None)
        assert await audit(keel, out.thread_id) == []
        ex = await keel.records.get_execution(out.execution_id)
        assert ex.status == "succeeded" and ex.succeeded is True
        assert (ex.steps, ex.input_tokens, ex.output_tokens) == (1, 20, 10)  # plan + one decide, 10/5 each
        assert float(ex.cost) == pytest.approx(2 * (10 * 1.0 + 5 * 2.0) / 1e6)


async def test_allowed_tool(make_keel):
    turns = [tool_call("read_file", path="shared/handbook.md"), "The handbook says deploy on Tuesdays."]
    async with make_keel(turns) as keel:
        out = await keel.run("what does the handbook say?", user_id="alice")
        # every call of the turn allowed: decide sends it straight to tool (no permission_check step)
        assert out.path == ["recall", "plan", "decide", "tool", "decide", "finalize"]
        assert out.answer == "The handbook says deploy on Tuesdays."
        assert await audit(keel, out.thread_id) == [
            ("permission", "read_file", "allow", None),
            ("tool_call", "read_file", None, "ok"),
        ]
        rows = await keel.records.audit_for(thread_id=out.thread_id)
        assert rows[0].resource == "shared:handbook.md" and "read_*" in rows[0].rule
        assert rows[1].result_digest and rows[1].duration_ms is not None
        tool_message = keel.fake_model.calls[-1]["messages"][-1]
        assert "Deploy on Tuesdays" in tool_message.content
        ex = await keel.records.get_execution(out.execution_id)
        assert list(ex.tools_used) == ["read_file"] and list(ex.tools_failed) == []


async def test_denied_tool(make_keel, workspace: Path):
    turns = [tool_call("write_file", path="shared/handbook.md", content="defaced"), "I was not allowed."]
    async with make_keel(turns) as keel:
        out = await keel.run("edit the handbook", user_id="alice")
        assert out.path == ["recall", "plan", "decide", "permission_check", "decide", "finalize"]
        assert await audit(keel, out.thread_id) == [("permission", "write_file", "deny", "denied")]
        assert "Deploy on Tuesdays" in (workspace / "shared" / "handbook.md").read_text()
        told = keel.fake_model.calls[-1]["messages"][-1]
        assert told.status == "error" and "denied by policy" in told.content
        ex = await keel.records.get_execution(out.execution_id)
        assert (list(ex.tools_refused), list(ex.tools_failed), list(ex.tools_used)) == (
            ["write_file"],
            [],
            [],
        )


async def test_other_users_home_is_denied_even_for_reading(make_keel):
    async with make_keel([tool_call("read_file", path="home/bob/secret.md"), "no"]) as keel:
        out = await keel.run("read bob's notes", user_id="alice")
        assert await audit(keel, out.thread_id) == [("permission", "read_file", "deny", "denied")]


async def test_ask_then_approve(make_keel, workspace: Path):
    turns = [tool_call("delete_file", path="~/draft.md"), "Deleted your draft."]
    async with make_keel(turns) as keel:
        out = await keel.run("delete my draft", user_id="alice")
        assert out.status == "awaiting_approval"
        assert out.path == ["recall", "plan", "decide", "permission_check"]
        assert out.approval["tool"] == "delete_file" and out.approval["resource"] == "own:draft.md"
        assert (workspace / "home/alice/draft.md").exists()
        # The postgres database is shared by the session: look at this thread's requests only.
        [pending] = [a for a in await keel.pending_approvals() if a.thread_id == out.thread_id]
        assert pending.approval_id == out.approval["approval_id"]
        assert (await keel.records.get_execution(out.execution_id)).status == "awaiting_approval"

        done = await keel.decide(pending.approval_id, "approve", approver="ops", approver_role="admin")
        assert done.path == ["approval", "tool", "decide", "finalize"]
        assert done.status == "succeeded" and done.execution_id == out.execution_id
        assert not (workspace / "home/alice/draft.md").exists()
        assert await audit(keel, out.thread_id) == [
            ("permission", "delete_file", "ask", None),
            ("approval_decision", "delete_file", "approve", "allowed"),
            ("tool_call", "delete_file", None, "ok"),
        ]
        row = await keel.records.get_approval(pending.approval_id)
        assert (row.status, row.decided_by) == ("approved", "ops")
        assert [a for a in await keel.pending_approvals() if a.thread_id == out.thread_id] == []


async def test_ask_then_edit(make_keel, workspace: Path):
    (workspace / "home/alice/other.md").write_text("x")
    async with make_keel([tool_call("delete_file", path="~/draft.md"), "ok"]) as keel:
        out = await keel.run("delete my draft", user_id="alice")
        await keel.decide(
            out.approval["approval_id"],
            "edit",
            approver="ops",
            approver_role="admin",
            args={"path": "~/other.md"},
        )
        assert (workspace / "home/alice/draft.md").exists()
        assert not (workspace / "home/alice/other.md").exists()
        rows = await keel.records.audit_for(thread_id=out.thread_id)
        assert rows[-1].event == "tool_call" and rows[-1].args == {"path": "~/other.md"}


async def test_edit_cannot_escalate(make_keel, workspace: Path):
    async with make_keel([tool_call("delete_file", path="~/draft.md"), "ok"]) as keel:
        out = await keel.run("delete my draft", user_id="alice")
        done = await keel.decide(
            out.approval["approval_id"],
            "edit",
            approver="ops",
            approver_role="admin",
            args={"path": "home/bob/secret.md"},
        )
        assert done.path == ["approval", "decide", "finalize"]
        assert (workspace / "home/bob/secret.md").exists()
        told = keel.fake_model.calls[-1]["messages"][-1]
        assert "denied by policy" in told.content


async def test_ask_then_reject(make_keel, workspace: Path):
    async with make_keel([tool_call("delete_file", path="~/draft.md"), "Understood."]) as keel:
        out = await keel.run("delete my draft", user_id="alice")
        done = await keel.decide(
            out.approval["approval_id"], "reject", approver="ops", approver_role="admin", reason="keep it"
        )
        assert done.path == ["approval", "decide", "finalize"]
        assert (workspace / "home/alice/draft.md").exists()
        assert ("approval_decision", "delete_file", "reject", "rejected") in await audit(keel, out.thread_id)
        told = keel.fake_model.calls[-1]["messages"][-1]
        assert "rejected by ops: keep it" in told.content


async def test_approval_refusals(make_keel):
    async with make_keel([tool_call("delete_file", path="~/draft.md"), "ok"]) as keel:
        out = await keel.run("delete my draft", user_id="alice")
        approval_id = out.approval["approval_id"]
        with pytest.raises(Exception, match="may not decide approvals"):
            await keel.decide(approval_id, "approve", approver="alice", approver_role="user")
        with pytest.raises(Exception, match="no approval request"):
            await keel.decide("nope", "approve", approver="ops", approver_role="admin")
        with pytest.raises(Exception, match="waiting for an approval"):
            await keel.run("something else", user_id="alice", thread_id=out.thread_id)
        await keel.decide(approval_id, "approve", approver="ops", approver_role="admin")
        with pytest.raises(Exception, match="already approved"):
            await keel.decide(approval_id, "reject", approver="ops", approver_role="admin")


async def test_expired_approval_counts_as_rejected(make_keel, workspace: Path):
    async with make_keel([tool_call("delete_file", path="~/draft.md"), "ok"], approval_ttl_s=0.05) as keel:
        keel.backends.policy.replace(
            PolicyMatrix.from_text(
                "version: 1\nroles: [user, admin]\nrules:\n"
                "  - {role: user, tool: '*', resource: '*', effect: ask}\n"
            )
        )
        out = await keel.run("delete my draft", user_id="alice")
        await asyncio.sleep(0.1)
        done = await keel.decide(
            out.approval["approval_id"], "approve", approver="ops", approver_role="admin"
        )
        assert done.path == ["approval", "decide", "finalize"]
        assert (workspace / "home/alice/draft.md").exists()
        assert (await keel.records.get_approval(out.approval["approval_id"])).status == "expired"
        assert ("approval_decision", "delete_file", "expired", "rejected") in await audit(keel, out.thread_id)


@pytest.mark.parametrize(
    ("call", "kind", "words"),
    [
        (tool_call("write_file", path="~/a.md"), "invalid_args", "content: Field required"),
        (tool_call("format_disk", device="sda"), "unknown_tool", "unknown tool 'format_disk'"),
        (tool_call("read_file", path="../../etc/passwd"), "invalid_args", "leaves the workspace"),
        (tool_call("write_file", path="~/a.md", content="x" * 70_000), "too_large", "the limit is 65536"),
    ],
)
async def test_invalid_calls_are_refused_and_audited(make_keel, workspace: Path, call, kind, words):
    async with make_keel([call, "sorry"]) as keel:
        out = await keel.run("do something odd", user_id="alice")
        assert out.path == ["recall", "plan", "decide", "permission_check", "decide", "finalize"]
        rows = await keel.records.audit_for(thread_id=out.thread_id)
        assert [(r.event, r.decision, r.status) for r in rows] == [("permission", "invalid", kind)]
        told = keel.fake_model.calls[-1]["messages"][-1]
        assert told.status == "error" and words in told.content
        assert not (workspace / "home/alice/a.md").exists()


class _SlowArgs(BaseModel):
    seconds: float


async def _sleep(args: _SlowArgs, ctx) -> str:
    await asyncio.sleep(args.seconds)
    return "woke up"


SLOW = ToolSpec(
    name="read_slowly",
    description="sleeps",
    args_model=_SlowArgs,
    run=_sleep,
    resource=lambda a, r, w: "shared:slow",
    timeout_s=0.2,
)


async def test_tool_timeout_cancels_and_reports(make_keel):
    registry = default_registry().with_tools(SLOW)
    async with make_keel([tool_call("read_slowly", seconds=5), "it timed out"], registry=registry) as keel:
        loop = asyncio.get_running_loop()
        started = loop.time()
        out = await keel.run("sleep", user_id="alice")
        assert loop.time() - started < 3
        # its only tool call failed: not a plain success (issue 11, item 6)
        assert (out.status, out.terminated_reason) == ("failed", "tools_refused")
        assert ("tool_call", "read_slowly", None, "timeout") in await audit(keel, out.thread_id)
        told = keel.fake_model.calls[-1]["messages"][-1]
        assert "timed out after 0.2 s" in told.content
        ex = await keel.records.get_execution(out.execution_id)
        assert list(ex.tools_failed) == ["read_slowly"]


async def test_max_steps_ends_in_fallback(make_keel):
    turns = [tool_call("list_files", call_id=f"c{i}", path="~") for i in range(5)]
    async with make_keel(turns, max_steps=2) as keel:
        out = await keel.run("loop forever", user_id="alice")
        assert out.path == [
            "recall",
            "plan",
            "decide",
            "tool",
            "decide",
            "tool",
            "fallback",
            "finalize",
        ]
        assert (out.status, out.terminated_reason) == ("terminated", "max_steps")
        assert f"resume with thread {out.thread_id}" in out.answer
        ex = await keel.records.get_execution(out.execution_id)
        assert (ex.status, ex.terminated_reason, ex.succeeded) == ("terminated", "max_steps", False)


async def test_deadline_ends_in_fallback(make_keel):
    async with make_keel([Slow(3.0, "too late")], run_timeout_s=0.5) as keel:
        out = await keel.run("think hard", user_id="alice")
        assert out.path == ["recall", "plan", "decide", "fallback", "finalize"]
        assert out.terminated_reason == "timeout"
        assert "ran out of time" in out.answer


async def test_model_failure_ends_in_fallback(make_keel):
    async with make_keel([RuntimeError("provider exploded")]) as keel:
        out = await keel.run("hi", user_id="alice")
        assert out.path == ["recall", "plan", "decide", "fallback", "finalize"]
        assert out.terminated_reason == "llm_unavailable"
        ex = await keel.records.get_execution(out.execution_id)
        assert "provider exploded" in ex.error


async def test_unknown_role_is_refused_before_anything_is_written(make_keel):
    async with make_keel(["hi"]) as keel:
        with pytest.raises(InvalidContext, match="unknown role 'root'"):
            await keel.run("hi", user_id="mallory", role="root")
        assert await keel.records.list_executions(user_id="mallory") == []


async def test_resume_after_max_steps_continues_the_thread(make_keel):
    turns = [tool_call("list_files", call_id="c1", path="~"), "Finished now."]
    async with make_keel(turns, max_steps=1) as keel:
        out = await keel.run("list my files", user_id="alice")
        assert out.terminated_reason == "max_steps"
        again = await keel.resume(out.thread_id)
        assert again.thread_id == out.thread_id and again.status == "succeeded"
        assert again.answer == "Finished now." and again.execution_id != out.execution_id


async def test_run_cost_cap_counts_the_next_call_before_it_is_made(make_keel):
    """Spent so far is $0.00002 (the plan); the next call's bound (1024 output tokens at $2/M alone is
    $0.002) would cross a $0.001 cap, so the run stops before the call instead of after it."""
    async with make_keel(["never asked"], run_cost_cap=0.001) as keel:
        out = await keel.run("hello", user_id="alice")
        assert out.path == ["recall", "plan", "fallback", "finalize"]
        assert (out.status, out.terminated_reason) == ("terminated", "run_cost_cap")
        assert "cost cap of $0.0010" in out.answer
        assert keel.fake_model.remaining == 1
        ex = await keel.records.get_execution(out.execution_id)
        assert "needs up to" in ex.error and float(ex.cost) == pytest.approx(2e-5)
