"""`keel resume` after an early stop carries out the rest of the original task (offline scripted model)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from keel.app.service import Keel
from keel.scripted_model import ScriptedChatModel
from keel.settings import Settings


async def test_resume_after_budget_exceeded_reads_the_file_the_task_named(
    settings: Settings, workspace: Path
):
    # The scripted model priced as fake-model, so that a budget can run out.
    async with Keel.open(settings, model=ScriptedChatModel(), model_name="fake-model") as keel:
        ledger = keel.backends.ledger
        await ledger.set_limit("alice", Decimal("0.000001"))
        out = await keel.run("read ~/draft.md", user_id="alice")
        assert (out.status, out.terminated_reason) == ("terminated", "budget_exceeded")
        await ledger.set_limit("alice", Decimal("1"))
        done = await keel.resume(out.thread_id)
        assert done.status == "succeeded"
        assert "read_file ~/draft.md: done — old draft" in done.answer
        calls = [r for r in await keel.records.audit_for(thread_id=out.thread_id) if r.event == "tool_call"]
        assert [(c.tool, c.status) for c in calls] == [("read_file", "ok")]
        execution = await keel.records.get_execution(done.execution_id)
        assert "read ~/draft.md" in execution.task  # the continued run's record names the original task
