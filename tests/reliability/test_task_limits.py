"""No silent cuts: a task over the limit is refused whole; the fitter never cuts the latest request."""

from __future__ import annotations

import uuid

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from keel.context import TaskTooLarge
from keel.memory.context import ContextBudget, ContextOverflow, fit_messages

BIG = "please summarise: " + "word " * 24_000  # ~120 KB


@pytest.fixture
def user() -> str:
    """A user of this test only (the session's PostgreSQL database is shared by every test)."""
    return f"tina-{uuid.uuid4().hex[:8]}"


async def test_task_over_max_task_chars_is_refused_and_nothing_stored(make_keel, user):
    async with make_keel([]) as keel:
        with pytest.raises(TaskTooLarge, match="KEEL_MAX_TASK_CHARS"):
            await keel.run(BIG, user_id=user)
        assert await keel.records.list_executions(user_id=user) == []
        assert keel.fake_model.calls == []


async def test_task_over_the_context_budget_fails_clearly_instead_of_being_cut(make_keel, user):
    """Under KEEL_MAX_TASK_CHARS but over the model's budget: refused, not run on the first ~56 KB."""
    async with make_keel(["done"], max_task_chars=200_000) as keel:
        with pytest.raises(TaskTooLarge, match="context budget"):
            await keel.run(BIG, user_id=user)
        assert await keel.records.list_executions(user_id=user) == []
        assert keel.fake_model.calls == []


async def test_server_path_refuses_a_too_long_task_in_recall(make_keel, user):
    """LangGraph Server calls the graph directly: the recall node applies the same limit."""
    async with make_keel([]) as keel:
        ctx = keel._context(user, "user", "default")
        with pytest.raises(TaskTooLarge, match="KEEL_MAX_TASK_CHARS"):
            await keel.graph.ainvoke(
                {"messages": [HumanMessage(BIG)]}, {"configurable": {"thread_id": "t-big"}}, context=ctx
            )
        assert await keel.records.list_executions(user_id=user) == []


async def test_a_task_within_both_limits_runs_whole(make_keel, user):
    task = "please summarise: " + "word " * 8_000  # ~40 KB, ~10k tokens: fits the 16k default
    async with make_keel(["summary"]) as keel:
        out = await keel.run(task, user_id=user)
        assert out.status == "succeeded"
        sent = keel.fake_model.calls[-1]["messages"]
        assert any(isinstance(m, HumanMessage) and m.content == task for m in sent)


def test_fitter_never_cuts_the_latest_request():
    history = [
        HumanMessage("old question " * 300, id="h0"),
        AIMessage("old answer " * 300, id="a0"),
        HumanMessage("please summarise: " + "word " * 5000, id="h1"),
    ]
    with pytest.raises(ContextOverflow, match="latest request"):
        fit_messages(SystemMessage("sys"), history, ContextBudget(max_input_tokens=800))
    out = fit_messages(SystemMessage("sys"), history, ContextBudget(max_input_tokens=8000))
    assert out[-1].content == history[-1].content and "h0" not in [m.id for m in out]
