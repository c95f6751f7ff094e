"""Tools by import path from keel.yaml: a `@tool` and a plain typed function become keel tools, run through
the graph under the policy and the executor's audit and exactly-once rules; `keel tools list` shows them."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keel.app.service import Keel
from keel.cli import app
from keel.config import ConfigError, load_config
from keel.context import RunContext
from keel.errors import Conflict
from keel.settings import Settings
from keel.testing.fake_model import FakeChatModel, tool_call
from keel.tools.from_config import registry_from_config
from keel.tools.imported import ImportedToolError, spec_from_tool
from keel.tools.registry import ToolRegistry

DATA = Path(__file__).parent / "data"

POLICY = """\
version: 1
roles: [admin, user]
rules:
  - {role: admin, tool: "*", resource: "*", effect: allow}
  - {role: user, tool: lookup_order, resource: "order:*", effect: allow}
  - {role: user, tool: refund_order, resource: "*", effect: deny}
  - {role: user, tool: "read_*", resource: "*", effect: allow}
"""

CONFIG = """\
agent: {name: support-desk, plan: false}
tools:
  - import: user_tools:lookup_order
    effect: read
    resource: "order:{order_id}"
    timeout_s: 5
  - import: user_tools:refund_order
    effect: idempotent
    resource: "refund:{order_id}"
    price_usd: 0.25
  - builtin: read_file
policy: policy.yaml
"""


@pytest.fixture
def user_tools(monkeypatch: pytest.MonkeyPatch):
    """The user module, importable as `user_tools`, its refund log empty."""
    monkeypatch.syspath_prepend(str(DATA))
    import user_tools

    monkeypatch.setattr(user_tools, "REFUNDS", [])
    yield user_tools
    sys.modules.pop("user_tools", None)


@pytest.fixture
def project(tmp_path: Path, user_tools) -> Path:
    (tmp_path / "policy.yaml").write_text(POLICY, encoding="utf-8")
    path = tmp_path / "keel.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def config_with(tmp_path: Path, tools: str):
    path = tmp_path / "keel.yaml"
    path.write_text(f"tools:\n{tools}", encoding="utf-8")
    return path, load_config(path)


def test_a_tool_and_a_function_become_specs(user_tools):
    spec = spec_from_tool(user_tools.lookup_order, effect="read", resource="order:{order_id}", timeout_s=5)
    assert (spec.name, spec.source, spec.effect, spec.timeout_s) == ("lookup_order", "python", "read", 5)
    assert spec.description == "Look up an order's status by its id."
    args = spec.args_model.model_validate({"order_id": "A1"})
    assert spec.resource(args, RunContext(user_id="u", role="user"), None) == "order:A1"
    fn = spec_from_tool(user_tools.refund_order, effect="idempotent", resource="refund:{order_id}")
    assert fn.name == "refund_order" and fn.description == "Refund an amount on an order."
    assert set(fn.schema()["function"]["parameters"]["required"]) == {"order_id", "amount"}
    with pytest.raises(Exception, match="amount"):
        fn.args_model.model_validate({"order_id": "A1", "amount": "lots"})


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"effect": "external"}, "is external: it must take the call's idempotency key"),
        ({"effect": "transactional"}, "is transactional: it must take keel's records transaction"),
        ({"effect": "read", "resource": "order:{id}"}, "names id, which is not an argument"),
        ({"effect": "read", "resource": "order:{order_id!r}"}, "must name an argument"),
    ],
)
def test_what_a_spec_refuses(user_tools, kwargs, reason):
    with pytest.raises(ImportedToolError, match=reason):
        spec_from_tool(user_tools.lookup_order, **kwargs)


def test_not_a_tool_is_refused(user_tools):
    with pytest.raises(ImportedToolError, match="no docstring"):
        spec_from_tool(user_tools.undocumented, effect="read")
    with pytest.raises(ImportedToolError, match="neither a LangChain tool nor a function"):
        spec_from_tool(user_tools.NOT_A_TOOL, effect="read")


@pytest.mark.parametrize(
    ("tools", "line", "reason"),
    [
        (
            "  - builtin: read_file\n  - builtin: read_flie\n",
            3,
            "unknown built-in tool 'read_flie' (known: read_file,",
        ),
        ("  - import: user_tools:nope\n    effect: read\n", 2, "user_tools has no 'nope'"),
        ("  - import: no_such_module_x:f\n    effect: read\n", 2, "ModuleNotFoundError"),
        (
            "  - import: user_tools:lookup_order\n    effect: external\n",
            2,
            "add a parameter `idempotency_key",
        ),
        ("  - import: user_tools:lookup_order\n    effect: read\n    resource: 'o:{x}'\n", 2, "names x"),
        (
            "  - mcp: {name: files, command: python}\n    effect: transactional\n",
            2,
            "mcp server 'files': effect 'transactional' is not possible for mcp tools",
        ),
        ("  - builtin: read_file\n  - builtin: read_file\n", 3, "listed twice"),
        ("  - builtin: send_email\n    effect: read\n", 2, "'transactional'; it cannot be declared 'read'"),
    ],
)
def test_a_bad_tool_fails_at_start_at_its_line(
    tmp_path: Path, user_tools, tools: str, line: int, reason: str
):
    path, config = config_with(tmp_path, tools)
    with pytest.raises(ConfigError) as info:
        registry_from_config(config)
    assert (info.value.source, info.value.line) == (str(path), line)
    assert reason in info.value.reason


async def test_config_tools_run_through_the_graph_under_the_policy(
    settings: Settings, project: Path, user_tools
):
    config = load_config(project)
    user = f"u-{uuid.uuid4().hex[:8]}"
    turns = [
        tool_call("lookup_order", call_id="c1", order_id="A1"),
        tool_call("refund_order", call_id="c2", order_id="A1", amount=5),
        "Order A1 has shipped; I could not refund it.",
    ]
    model = FakeChatModel(turns)
    async with Keel.open(settings, model=model, model_name="fake-model", config=config) as keel:
        assert keel.backends.registry.names() == ["lookup_order", "refund_order", "read_file"]
        assert keel.backends.settings.plan_enabled is False
        assert keel.backends.prices.tool_cost("refund_order") == 0.25
        out = await keel.run("where is my order A1? refund it", user_id=user)
        assert out.status == "succeeded" and out.answer.startswith("Order A1 has shipped")
        rows = await keel.records.audit_for(thread_id=out.thread_id)
        assert [(r.event, r.tool, r.decision, r.status, r.resource) for r in rows] == [
            ("permission", "lookup_order", "allow", None, "order:A1"),
            ("tool_call", "lookup_order", None, "ok", "order:A1"),
            ("permission", "refund_order", "deny", "denied", "refund:A1"),
        ]
        seen = [m for m in model.calls[1]["messages"] if getattr(m, "tool_call_id", None) == "c1"]
        assert seen and seen[0].content == "order A1: shipped"
        assert user_tools.REFUNDS == []  # the denied call never ran


async def test_a_recorded_call_is_replayed_not_run_again(settings: Settings, project: Path, user_tools):
    """The executor records every call by (thread, tool_call_id): a resumed run gets the recorded result
    and the tool does not run twice, for `read` and `idempotent` tools alike."""
    config = load_config(project)
    async with Keel.open(settings, model=FakeChatModel([]), model_name="fake-model", config=config) as keel:
        run = RunContext(user_id=f"u-{uuid.uuid4().hex[:8]}", role="user")
        thread = str(uuid.uuid4())
        args = {"order_id": "B2", "amount": 1.5}
        executor = keel.backends.executor
        first = await executor.execute("c9", "refund_order", args, run, thread, deadline=1e12)
        again = await executor.execute("c9", "refund_order", args, run, thread, deadline=1e12)
        assert (first.status, again.status) == ("ok", "replayed")
        assert first.message.content == again.message.content == "refunded 1.50 on B2"
        assert user_tools.REFUNDS == ["B2"]


def test_tools_list_json_matches_the_config(project: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("KEEL_CONFIG", raising=False)
    result = CliRunner().invoke(app, ["tools", "list", "--json", "--config", str(project)])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["name"], r["source"], r["effect"], r["resource"]) for r in rows] == [
        ("lookup_order", "python", "read", "order:{order_id}"),
        ("refund_order", "python", "idempotent", "refund:{order_id}"),
        ("read_file", "builtin", "read", None),
    ]
    assert [r["policy"]["decision"] for r in rows] == ["allow", "deny", "allow"]
    assert rows[0]["policy"]["rule"]["line"] == 5 and rows[0]["timeout_s"] == 5
    text = CliRunner().invoke(app, ["--config", str(project), "tools", "list"])
    assert text.exit_code == 0, text.output
    assert (
        text.stdout.splitlines()[1]
        == "lookup_order\tpython\tread\torder:{order_id}\torder:*→allow (#2), else deny"
    )
    bad = project.parent / "bad.yaml"
    bad.write_text("tools:\n  - import: user_tools:lookup_order\n", encoding="utf-8")
    refused = CliRunner().invoke(app, ["tools", "list", "--config", str(bad)])
    assert refused.exit_code == 1
    assert f"{bad}:2: tool entry has no 'effect'" in refused.stderr


async def test_the_server_graph_is_built_from_keel_yaml(
    project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path
):
    """What `langgraph dev` serves (keel.app.server_graph:make_graph over the process's backends) runs the
    tools and the policy of the project's keel.yaml, found by $KEEL_CONFIG as the CLI finds it."""
    import keel.app.server_backends as server
    from keel.app.backends import open_checkpointer
    from keel.app.server_graph import always_sync
    from keel.graphs.agent import build_graph

    monkeypatch.setenv("KEEL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KEEL_CONFIG", str(project))
    monkeypatch.setattr(server, "_built", [])
    b = await server.start()
    try:
        assert {"lookup_order", "refund_order", "read_file"} == set(b.registry.names())
        assert b.policy.current().source == str(tmp_path / "policy.yaml")
        assert b.settings.plan_enabled is False
        b.model = FakeChatModel([tool_call("lookup_order", call_id="s1", order_id="A1"), "A1 has shipped."])
        b.models = [(b.model_name, b.model)]
        async with open_checkpointer(b.settings) as saver:
            graph = always_sync(build_graph(b, checkpointer=saver))
            ctx = RunContext(user_id=f"u-{uuid.uuid4().hex[:8]}", role="user")
            config = {"configurable": {"thread_id": str(uuid.uuid4())}}
            out = await graph.ainvoke({"messages": [("user", "where is A1?")]}, config, context=ctx)
        assert out["tools_used"] == ["lookup_order"]
        rows = await b.records.audit_for(thread_id=config["configurable"]["thread_id"])
        assert any(r.event == "tool_call" and r.tool == "lookup_order" and r.status == "ok" for r in rows)
    finally:
        await b.aclose()


def test_the_offline_model_calls_a_config_tool_by_name(
    project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, user_tools
):
    """`keel run` with the scripted model reaches the project's own tools: a clause naming a tool it was
    given (`<tool> key=value`) is a call to it, the text converted by the tool's own schema."""
    monkeypatch.setenv("KEEL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KEEL_CONFIG", raising=False)
    result = CliRunner().invoke(
        app,
        [
            "run",
            "--config",
            str(project),
            "--json",
            "--user",
            f"u-{uuid.uuid4().hex[:8]}",
            "lookup_order order_id=A1 then refund_order order_id=B2 amount=2.5",
        ],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["status"] == "succeeded" and out["path"].count("tool") == 1
    assert "- lookup_order A1: done — order A1: shipped" in out["answer"]
    assert "- refund_order B2: failed — denied by policy (rule #3" in out["answer"]  # the CLI's role: user
    assert user_tools.REFUNDS == []


def test_a_module_beside_the_config_is_importable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`import: my_desk_tools:…` finds the module next to keel.yaml wherever keel was started."""
    name = f"desk_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        "def ping(who: str) -> str:\n    'Say hello.'\n    return f'hello {who}'\n", encoding="utf-8"
    )
    monkeypatch.chdir("/")
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    _, config = config_with(tmp_path, f"  - import: {name}:ping\n    effect: read\n")
    assert registry_from_config(config).names() == ["ping"]
    sys.modules.pop(name, None)


async def test_external_and_transactional_tools_get_what_keel_fills(settings: Settings, user_tools):
    """An external tool gets the call's idempotency key (hidden from the model; a key the model makes up is
    overwritten) or LangChain's injected tool call id; a transactional tool writes in the transaction of its
    result row, so a failing one leaves nothing behind."""
    from sqlalchemy import text

    monkey = pytest.MonkeyPatch()
    monkey.setattr(user_tools, "CALLS", [])
    monkey.setattr(user_tools, "CHARGES", {})
    try:
        charge = spec_from_tool(user_tools.charge_card, effect="external")
        ship = spec_from_tool(user_tools.ship_order, effect="external")
        note = spec_from_tool(user_tools.note_order, effect="transactional")
        fail = spec_from_tool(user_tools.note_then_fail, effect="transactional")
        assert set(charge.args_model.model_fields) == {"order_id", "amount"}
        assert set(ship.args_model.model_fields) == {"order_id"}
        assert set(note.args_model.model_fields) == {"order_id", "note"}
        registry = ToolRegistry([charge, ship, note, fail])
        async with Keel.open(
            settings, model=FakeChatModel([]), model_name="fake-model", registry=registry
        ) as keel:
            async with keel.records.transaction() as conn:
                await conn.execute(text("CREATE TABLE user_order_notes (order_id TEXT, note TEXT)"))
            run = RunContext(user_id=f"u-{uuid.uuid4().hex[:8]}", role="user")
            thread = str(uuid.uuid4())
            ex = keel.backends.executor
            made_up = {"order_id": "A1", "amount": 3, "idempotency_key": "chosen-by-the-model"}
            out = await ex.execute("k1", "charge_card", made_up, run, thread, deadline=1e12)
            assert (out.status, user_tools.CALLS) == ("ok", [f"{thread}:k1"])
            out = await ex.execute("k2", "ship_order", {"order_id": "A1"}, run, thread, deadline=1e12)
            assert out.message.content == "shipping A1 (request k2)"
            out = await ex.execute(
                "k3", "note_order", {"order_id": "A1", "note": "fragile"}, run, thread, deadline=1e12
            )
            failed = await ex.execute("k4", "note_then_fail", {"order_id": "B2"}, run, thread, deadline=1e12)
            assert (out.status, failed.status) == ("ok", "failed")
            assert "the warehouse said no" in failed.message.content
            async with keel.records.transaction() as conn:
                rows = (await conn.execute(text("SELECT order_id, note FROM user_order_notes"))).all()
            assert [tuple(r) for r in rows] == [("A1", "fragile")]
            assert (await keel.records.get_tool_result(thread, "k4")).status == "failed"
    finally:
        monkey.undo()


@pytest.mark.parametrize(
    ("target", "effect", "reason"),
    [
        ("sync_note", "transactional", "it must be async"),
        ("note_order", "idempotent", "keel gives only to a tool declared 'transactional'"),
        ("with_state", "read", "argument 'state' is injected by LangGraph's ToolNode"),
        ("ship_order", "read", None),
    ],
)
def test_what_an_effect_needs_is_checked_at_start(tmp_path: Path, user_tools, target, effect, reason):
    path, config = config_with(tmp_path, f"  - import: user_tools:{target}\n    effect: {effect}\n")
    if reason is None:
        assert registry_from_config(config).names() == [target]
        return
    with pytest.raises(ConfigError) as info:
        registry_from_config(config)
    assert (info.value.line, reason in info.value.reason) == (2, True), info.value.reason


async def test_an_ask_rule_pauses_a_config_tool_until_an_admin_approves(
    settings: Settings, tmp_path: Path, user_tools
):
    """A tool of the application's own code under `ask`: the run pauses at the approval interrupt, the tool
    has not run; an admin approves and it runs once, with its idempotency key, and is audited."""
    (tmp_path / "policy.yaml").write_text(
        POLICY.replace(
            'tool: refund_order, resource: "*", effect: deny', 'tool: charge_card, resource: "*", effect: ask'
        ),
        encoding="utf-8",
    )
    path = tmp_path / "keel.yaml"
    path.write_text(
        "agent: {plan: false}\ntools:\n  - import: user_tools:charge_card\n    effect: external\n"
        "    resource: 'order:{order_id}'\npolicy: policy.yaml\n",
        encoding="utf-8",
    )
    monkey = pytest.MonkeyPatch()
    monkey.setattr(user_tools, "CALLS", [])
    turns = [tool_call("charge_card", call_id="p1", order_id="A1", amount=9), "Charged."]
    try:
        async with Keel.open(
            settings, model=FakeChatModel(turns), model_name="fake-model", config=load_config(path)
        ) as keel:
            out = await keel.run("charge A1 9", user_id=f"u-{uuid.uuid4().hex[:8]}")
            assert out.status == "awaiting_approval" and out.approval["tool"] == "charge_card"
            assert out.approval["resource"] == "order:A1" and user_tools.CALLS == []
            approval_id = out.approval["approval_id"]
            async with Keel.open(settings, model=FakeChatModel([]), model_name="fake-model") as elsewhere:
                # keel without the project's config has no charge_card: the decision is refused, not spent
                with pytest.raises(Conflict, match="the config in use does not have"):
                    await elsewhere.decide(approval_id, "approve", approver="ops", approver_role="admin")
            assert (await keel.records.get_approval(approval_id)).status == "pending"
            done = await keel.decide(
                out.approval["approval_id"], "approve", approver="ops", approver_role="admin"
            )
            assert (done.status, done.path) == ("succeeded", ["approval", "tool", "decide", "finalize"])
            key = f"{out.thread_id}:p1"
            assert list(user_tools.CALLS) == [key]
            rows = await keel.records.audit_for(thread_id=out.thread_id)
            assert [(r.event, r.decision, r.status) for r in rows] == [
                ("permission", "ask", None),
                ("approval_decision", "approve", "allowed"),
                ("tool_call", None, "ok"),
            ]
    finally:
        monkey.undo()


def test_the_offline_models_plan_names_the_calls_it_will_make():
    """The plan node asks after the request (PLAN_INSTRUCTION, no tools bound): the scripted plan lists
    the calls of the request, a named tool included, not "answer directly"."""
    from langchain_core.messages import HumanMessage

    from keel.prompts import PLAN_INSTRUCTION
    from keel.scripted_model import ScriptedChatModel

    asked = [HumanMessage("read notes.md then lookup_order order_id=A1"), HumanMessage(PLAN_INSTRUCTION)]
    assert (
        ScriptedChatModel().invoke(asked).content.endswith("Plan: 1. read_file notes.md; 2. lookup_order A1")
    )
