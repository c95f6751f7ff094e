"""keel inside your own LangGraph app: `keel.create_guarded_agent` over your model and your `@tool`s, run
directly and as a node of your own graph, on both storage profiles."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import Command

import keel
from keel.app.guarded_agent import NoCheckpointerWarning
from keel.context import InvalidContext, RunContext
from keel.policies.matrix import PolicyMatrix
from keel.settings import Settings
from keel.testing.fake_model import FakeChatModel, tool_call

POLICY = """
version: 1
roles: [admin, user, viewer]
approvers: [admin]
rules:
  - {role: "*", tool: lookup_order, resource: "order:*", effect: allow}
  - {role: user, tool: refund_order, resource: "order:*", effect: ask}
"""

DONE: list[str] = []
"""Side effects of the tools below, in order (cleared by each test)."""


@tool
def lookup_order(order_id: str) -> str:
    """Look an order up by its id."""
    DONE.append(f"lookup {order_id}")
    return f"order {order_id}: shipped"


@tool
def refund_order(order_id: str) -> str:
    """Refund an order."""
    DONE.append(f"refund {order_id}")
    return f"order {order_id} refunded"


@tool
def cancel_order(order_id: str) -> str:
    """Cancel an order (no rule allows it)."""
    DONE.append(f"cancel {order_id}")
    return f"order {order_id} cancelled"


TOOLS = [
    keel.guarded_tool(lookup_order, effect="read", resource="order:{order_id}"),
    keel.guarded_tool(refund_order, effect="idempotent", resource="order:{order_id}"),
    keel.guarded_tool(cancel_order, effect="idempotent", resource="order:{order_id}"),
]


@pytest.fixture(autouse=True)
def _clear() -> None:
    DONE.clear()


@pytest.fixture
async def agent_for(settings: Settings) -> AsyncIterator:
    """`agent_for(turns, **kwargs)`: a guarded agent over a FakeChatModel, closed after the test."""
    opened = []

    def make(turns: list, **kwargs):
        kwargs.setdefault("policy", PolicyMatrix.from_text(POLICY))
        kwargs.setdefault("checkpointer", InMemorySaver())
        s = settings.model_copy(update={"memory_enabled": False})
        model = FakeChatModel(turns)
        agent = keel.create_guarded_agent(model, TOOLS, settings=s, **kwargs)
        agent.fake_model = model
        opened.append(agent)
        return agent

    yield make
    for agent in opened:
        await agent.aclose()


def ask(text: str) -> dict:
    return {"messages": [HumanMessage(text)]}


def thread() -> dict:
    return {"configurable": {"thread_id": str(uuid.uuid4())}}


def user(role: str = "user") -> RunContext:
    return RunContext(user_id=f"u-{uuid.uuid4().hex[:10]}", role=role)


async def audit(agent, config: dict) -> list[tuple]:
    rows = await agent.keel_backends.records.audit_for(thread_id=config["configurable"]["thread_id"])
    return [(r.event, r.tool, r.decision, r.status) for r in rows]


async def test_runs_your_tool_and_records_it(agent_for):
    agent = agent_for([tool_call("lookup_order", order_id="42"), "Order 42 has shipped."])
    config, who = thread(), user()
    out = await agent.ainvoke(ask("where is order 42?"), config, context=who)
    assert (out["status"], out["answer"]) == ("succeeded", "Order 42 has shipped.")
    assert DONE == ["lookup 42"]
    assert await audit(agent, config) == [
        ("permission", "lookup_order", "allow", None),
        ("tool_call", "lookup_order", None, "ok"),
    ]
    rows = await agent.keel_backends.records.audit_for(thread_id=config["configurable"]["thread_id"])
    assert rows[0].resource == "order:42"
    ex = await agent.keel_backends.records.get_execution(out["execution_id"])
    assert (ex.user_id, ex.role, ex.status) == (who.user_id, "user", "succeeded")
    assert list(ex.tools_used) == ["lookup_order"]


async def test_the_model_you_pass_is_the_one_called(agent_for):
    agent = agent_for(["Hello."])
    await agent.ainvoke(ask("hi"), thread(), context=user())
    bound = [c["tools"] for c in agent.fake_model.calls if c["tools"]]
    assert bound == [["lookup_order", "refund_order", "cancel_order"]], "decide called it with the tools"


async def test_a_tool_no_rule_allows_is_denied_and_never_runs(agent_for):
    agent = agent_for([tool_call("cancel_order", order_id="7"), "I may not cancel it."])
    config = thread()
    out = await agent.ainvoke(ask("cancel order 7"), config, context=user())
    assert DONE == [] and out["answer"] == "I may not cancel it."
    assert await audit(agent, config) == [("permission", "cancel_order", "deny", "denied")]


async def test_an_ask_tool_interrupts_and_runs_once_when_approved(agent_for):
    agent = agent_for([tool_call("refund_order", order_id="9"), "Refunded."])
    config, who = thread(), user()
    paused = await agent.ainvoke(ask("refund order 9"), config, context=who)
    request = paused["__interrupt__"][0].value
    assert (request["tool"], request["args"]) == ("refund_order", {"order_id": "9"})
    assert DONE == []
    again = RunContext(user_id=who.user_id, role=who.role)  # a later request: a new context object
    done = await agent.ainvoke(
        Command(resume={"decision": "approve", "approver": "boss"}), config, context=again
    )
    assert (done["status"], done["answer"], DONE) == ("succeeded", "Refunded.", ["refund 9"])
    ex = await agent.keel_backends.records.get_execution(done["execution_id"])
    assert ex.status == "succeeded", "the resume carried on the execution that asked"
    (approval,) = await agent.keel_backends.records.list_approvals(status=None, requester=who.user_id)
    assert (approval.execution_id, approval.decided_by) == (ex.execution_id, "boss")


async def test_without_context_the_run_is_anonymous_and_read_only(agent_for):
    agent = agent_for([tool_call("refund_order", order_id="9"), "I may not."])
    out = await agent.ainvoke(ask("refund order 9"), thread())
    ex = await agent.keel_backends.records.get_execution(out["execution_id"])
    assert (ex.user_id, ex.role) == ("anonymous", "viewer")
    assert DONE == [] and out["answer"] == "I may not."  # viewers are not asked about: denied


async def test_on_the_server_the_authenticated_user_runs_not_the_default(agent_for):
    agent = agent_for(["Hello."])
    config = thread()
    who = f"u-{uuid.uuid4().hex[:10]}"
    config["configurable"]["langgraph_auth_user"] = {"identity": who, "role": "user", "tenant": "default"}
    out = await agent.ainvoke(ask("hi"), config)
    ex = await agent.keel_backends.records.get_execution(out["execution_id"])
    assert (ex.user_id, ex.role) == (who, "user")


async def test_identity_none_requires_a_context(agent_for):
    agent = agent_for(["never"], identity=None)
    with pytest.raises(InvalidContext, match="no run context"):
        await agent.ainvoke(ask("hi"), thread())
    assert agent.fake_model.calls == []


async def test_as_a_subgraph_sharing_messages(agent_for):
    agent = agent_for([tool_call("lookup_order", order_id="5"), "Order 5 has shipped."], checkpointer=None)

    async def greet(state: MessagesState) -> dict:
        return {"messages": [AIMessage("Let me check.")]}

    async def sign(state: MessagesState) -> dict:
        return {"messages": [AIMessage(f"{state['messages'][-1].content} -- the desk")]}

    parent = StateGraph(MessagesState, context_schema=RunContext)
    parent.add_node("greet", greet)
    parent.add_node("keel", agent)
    parent.add_node("sign", sign)
    parent.add_edge(START, "greet")
    parent.add_edge("greet", "keel")
    parent.add_edge("keel", "sign")
    parent.add_edge("sign", END)
    app = parent.compile(checkpointer=InMemorySaver())
    config, who = thread(), user()
    out = await app.ainvoke(ask("where is order 5?"), config, context=who)
    texts = [m.content for m in out["messages"]]
    assert texts[0] == "where is order 5?" and texts[1] == "Let me check."
    assert texts[-1] == "Order 5 has shipped. -- the desk"
    assert DONE == ["lookup 5"]
    assert await audit(agent, config) == [
        ("permission", "lookup_order", "allow", None),
        ("tool_call", "lookup_order", None, "ok"),
    ]
    (ex,) = await agent.keel_backends.records.list_executions(user_id=who.user_id)
    assert ex.status == "succeeded"


async def test_an_approval_inside_the_subgraph_pauses_and_resumes_the_parent(agent_for):
    agent = agent_for([tool_call("refund_order", order_id="3"), "Refunded."], checkpointer=None)
    parent = StateGraph(MessagesState, context_schema=RunContext)
    parent.add_node("keel", agent)
    parent.add_edge(START, "keel")
    parent.add_edge("keel", END)
    app = parent.compile(checkpointer=InMemorySaver())
    config, who = thread(), user()
    paused = await app.ainvoke(ask("refund order 3"), config, context=who)
    assert paused["__interrupt__"][0].value["tool"] == "refund_order" and DONE == []
    out = await app.ainvoke(Command(resume={"decision": "approve", "approver": "boss"}), config, context=who)
    assert out["messages"][-1].content == "Refunded." and DONE == ["refund 3"]
    (ex,) = await agent.keel_backends.records.list_executions(user_id=who.user_id)
    assert ex.status == "succeeded"


async def test_a_plain_tool_is_refused_with_the_fix(settings: Settings):
    with pytest.raises(TypeError, match=r"lookup_order.*keel\.guarded_tool\(lookup_order, effect="):
        keel.create_guarded_agent(FakeChatModel([]), [lookup_order], settings=settings)


def test_an_unsupported_effect_is_refused_at_declaration():
    with pytest.raises(ValueError, match="effect 'sometimes'"):
        keel.guarded_tool(lookup_order, effect="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="order_no"):
        keel.guarded_tool(lookup_order, effect="read", resource="order:{order_no}")


def test_a_model_without_a_price_is_refused(tmp_path: Path):
    with pytest.raises(KeyError, match="no price for model 'unpriced'"):
        keel.create_guarded_agent(
            FakeChatModel([], model_name="unpriced"), TOOLS, settings=Settings(home=tmp_path)
        )


async def test_standalone_without_checkpointer_warns(agent_for):
    agent = agent_for(["Hello."], checkpointer=None)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        out = await agent.ainvoke(ask("hi"), thread(), context=user())
    assert out["answer"] == "Hello."
    assert any(issubclass(w.category, NoCheckpointerWarning) for w in seen)


def test_the_library_page_snippet_runs(tmp_path: Path):
    page = Path(__file__).resolve().parents[1] / "docs" / "library.md"
    (snippet,) = re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.S)
    done = subprocess.run(
        [sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "succeeded - Order 42 has shipped."
