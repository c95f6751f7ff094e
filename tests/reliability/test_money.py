"""Money is exact: every model call carries max_tokens; an overrun is charged the truth, marked and
stops the run; a committed tool effect is charged once across a crash; a model answer whose settlement
the records database refused is charged when the run resumes."""

from __future__ import annotations

import uuid
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_openai import ChatOpenAI

from keel.app.service import Keel
from keel.budget import BudgetLedger
from keel.records import Records, RecordsUnavailable
from keel.scripted_model import ScriptedChatModel
from keel.settings import Settings
from keel.testing.fake_model import tool_call
from keel.testing.openai_server import FakeOpenAIServer, Reply


class _Crash(BaseException):
    """Stands for the process dying: not an Exception, so nothing in keel catches it."""


def _openai(settings: Settings, server: FakeOpenAIServer, **extra: Any) -> Settings:
    return settings.model_copy(
        update={
            "model_provider": "openai",
            "openai_base_url": server.base_url,
            "model": "fake-model",
            "openai_api_key": "test-key",
            **extra,
        }
    )


def _user() -> str:
    """A user of this test only (the PostgreSQL database is shared by the session)."""
    return f"u-{uuid.uuid4().hex[:10]}"


def _sent_bound(body: dict[str, Any]) -> int | None:
    return body.get("max_completion_tokens", body.get("max_tokens"))


# -- max_tokens travels with every call ---------------------------------------------------------------


@pytest.mark.parametrize("caller_model", [False, True], ids=["from-settings", "passed-in"])
async def test_every_model_request_carries_max_tokens(
    settings: Settings, workspace, server: FakeOpenAIServer, caller_model: bool
) -> None:
    """Plan and decide requests both carry the bound, also for a ChatOpenAI the caller built without one."""
    server.enqueue(
        Reply(content="1. read", usage=(10, 5)),
        Reply(tool_calls=[("read_file", {"path": "shared/handbook.md"})], usage=(10, 5)),
        Reply(content="Deploy on Tuesdays.", usage=(10, 5)),
    )
    s = _openai(settings, server, max_output_tokens=321)
    model = (
        ChatOpenAI(base_url=server.base_url, api_key="k", model="fake-model", max_retries=0)
        if caller_model
        else None
    )
    async with Keel.open(s, model=model, model_name="fake-model") as keel:
        out = await keel.run("when do we deploy?", user_id="alice")
    assert out.status == "succeeded"
    assert len(server.requests) == 3
    assert [_sent_bound(body) for body in server.requests] == [321, 321, 321]


def test_the_scripted_model_cuts_its_output_to_max_tokens() -> None:
    model = ScriptedChatModel()
    task = [HumanMessage("read a.md then read b.md then read c.md then list shared then read d.md")]
    free = model.invoke(task)
    assert free.usage_metadata["output_tokens"] > 3
    cut = model.bind(max_tokens=3).invoke(task)
    assert cut.usage_metadata["output_tokens"] <= 3
    assert cut.response_metadata["finish_reason"] == "length"
    assert free.text.startswith(cut.text)
    assert ScriptedChatModel(max_tokens=3).invoke(task).usage_metadata["output_tokens"] <= 3


# -- a provider that ignores max_tokens ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "cap", "reason"),
    [(0.05, 1.0, "budget_exceeded"), (10.0, 0.1, "run_cost_cap")],
)
async def test_an_overrun_is_charged_the_truth_marked_and_stops_the_run(
    settings: Settings, workspace, server: FakeOpenAIServer, limit: float, cap: float, reason: str
) -> None:
    """The provider reports 250k output tokens against max_tokens=256: $0.55 is charged (not the
    bound), the entry is marked, and neither the answer's tool call nor another model call happens."""
    server.enqueue(
        Reply(content="1. read", usage=(10, 5)),
        Reply(tool_calls=[("read_file", {"path": "shared/handbook.md"})], usage=(50_000, 250_000)),
    )
    s = _openai(settings, server, max_output_tokens=256, run_cost_cap=cap)
    user = _user()
    async with Keel.open(s) as keel:
        await keel.backends.ledger.set_limit(user, limit)
        out = await keel.run("when do we deploy?", user_id=user)
        entries = await keel.backends.ledger.history(user)
        tools = [r for r in await keel.records.audit_for(thread_id=out.thread_id) if r.event == "tool_call"]
        status = await keel.backends.ledger.status(user)
    assert (out.status, out.terminated_reason) == ("terminated", reason)
    assert out.path == ["recall", "plan", "decide", "fallback", "finalize"]
    assert len(server.requests) == 2 and tools == []
    overrun = [e for e in entries if e.overrun]
    assert len(overrun) == 1
    assert overrun[0].actual == Decimal("0.55000000") and overrun[0].status == "settled"
    assert overrun[0].estimate < overrun[0].actual and "overrun" in (overrun[0].reason or "")
    assert status.spent == sum(e.actual for e in entries if e.status == "settled")
    assert status.reserved == 0


async def test_an_overrun_that_still_fits_stops_the_run_before_the_next_call(
    settings: Settings, workspace, server: FakeOpenAIServer
) -> None:
    server.enqueue(Reply(content="1. read", usage=(10, 5_000)))
    user = _user()
    async with Keel.open(_openai(settings, server, max_output_tokens=256)) as keel:
        out = await keel.run("when do we deploy?", user_id=user)
        entries = await keel.backends.ledger.history(user)
    assert out.terminated_reason == "budget_exceeded" and "max_tokens bound of 256" in out.answer
    assert out.path == ["recall", "plan", "fallback", "finalize"]
    assert len(server.requests) == 1
    assert [(e.overrun, e.actual) for e in entries] == [(True, Decimal("0.01001000"))]


# -- a tool's committed effect is charged exactly once ------------------------------------------------


async def test_a_committed_tool_effect_is_charged_once_across_a_crash(make_keel, monkeypatch) -> None:
    """The process dies while charging send_email: its outbox row and its charge stand or fall together,
    so after the resume there is one email and one charge."""
    real_settle = BudgetLedger.settle
    crashed: list[str] = []

    async def settle(self, res, actual, **kw):
        if res.kind == "tool" and not crashed:
            crashed.append(res.name)
            raise _Crash
        return await real_settle(self, res, actual, **kw)

    monkeypatch.setattr(BudgetLedger, "settle", settle)
    user = _user()
    email = tool_call("send_email", call_id="mail-1", to="bob@example.com", subject="hi", body="hello bob")
    async with make_keel([email, "Sent.", "Sent."]) as keel:
        with pytest.raises(_Crash):
            await keel.run("email bob", user_id=user, role="admin")
        thread = (await keel.records.list_executions(user_id=user))[0].thread_id
        out = await keel.resume(thread)
        outbox = await keel.records.list_outbox(user_id=user)
        entries = await keel.backends.ledger.history(user)
        status = await keel.backends.ledger.status(user)
        ex = await keel.records.get_execution(out.execution_id)
    assert crashed == ["send_email"] and out.status == "succeeded"
    assert len(outbox) == 1
    charges = [e for e in entries if e.name == "send_email" and e.status == "settled"]
    assert [e.actual for e in charges] == [Decimal("0.00100000")]
    assert status.spent == sum(e.actual for e in entries if e.status == "settled") and status.reserved == 0
    assert float(ex.cost) == pytest.approx(float(status.spent))


async def test_a_tool_replayed_after_a_crash_is_not_charged_twice(make_keel, monkeypatch) -> None:
    """The process dies after send_email's step wrote everything but before its checkpoint."""
    from keel.nodes import tool as tool_node

    real = tool_node.make_tool
    crashed: list[bool] = []

    def make_tool(**deps):
        node = real(**deps)

        async def tool(state, config, runtime):
            update = await node(state, config, runtime)
            if not crashed:
                crashed.append(True)
                raise _Crash
            return update

        return tool

    monkeypatch.setattr("keel.graphs.agent.make_tool", make_tool)
    user = _user()
    email = tool_call("send_email", call_id="mail-2", to="bob@example.com", subject="hi", body="hello bob")
    async with make_keel([email, "Sent."]) as keel:
        with pytest.raises(_Crash):
            await keel.run("email bob", user_id=user, role="admin")
        thread = (await keel.records.list_executions(user_id=user))[0].thread_id
        out = await keel.resume(thread)
        entries = await keel.backends.ledger.history(user)
        status = await keel.backends.ledger.status(user)
        ex = await keel.records.get_execution(out.execution_id)
    assert out.status == "succeeded"
    charges = [e.actual for e in entries if e.name == "send_email" and e.status == "settled"]
    assert charges == [Decimal("0.00100000")]
    assert float(ex.cost) == pytest.approx(float(status.spent))


# -- a model answer the ledger could not settle --------------------------------------------------------


async def test_a_model_answer_settled_while_records_were_down_is_charged_on_resume(
    make_keel, monkeypatch
) -> None:
    """The model answers, then the records database goes away: the run cannot finish, and when it is
    back the resumed run charges that call (the reservation is not merely released)."""
    down: list[bool] = []
    real_connect = Records._connect

    @asynccontextmanager
    async def connect(self, *, read: bool = False):
        if down:
            raise RecordsUnavailable("records database is down (test)")
        async with real_connect(self, read=read) as conn:
            yield conn

    monkeypatch.setattr(Records, "_connect", connect)

    def answer_then_outage(messages) -> AIMessage:
        down.append(True)
        return AIMessage(content="Done.")

    user = _user()
    async with make_keel([answer_then_outage]) as keel:
        with pytest.raises(RecordsUnavailable):
            await keel.run("say done", user_id=user)
        down.clear()
        thread = (await keel.records.list_executions(user_id=user))[0].thread_id
        snapshot = await keel.graph.aget_state({"configurable": {"thread_id": thread}})
        assert snapshot.values.get("owed_charges")
        out = await keel.resume(thread)
        entries = await keel.backends.ledger.history(user)
        status = await keel.backends.ledger.status(user)
        after = await keel.graph.aget_state({"configurable": {"thread_id": thread}})
    assert out.status == "succeeded" and out.answer == "Done."
    one_call = Decimal("0.00002000")  # 10 input and 5 output tokens of fake-model
    assert sorted(e.actual for e in entries if e.status == "settled") == [one_call, one_call]
    assert status.spent == 2 * one_call and status.reserved == 0
    assert not after.values.get("owed_charges")
