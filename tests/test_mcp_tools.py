"""MCP tools from keel.yaml: the example's notes server (stdio, and streamable HTTP on a free port) under a
policy that allows, asks and denies; the idempotency key keel fills; failures; start-up refusals."""

from __future__ import annotations

import contextlib
import os
import signal
import uuid
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage
from mcp_support import http_server, notes_project, server_pids

from keel.app.service import Keel
from keel.cli.tools import pin_rows
from keel.config import ConfigError, load_config
from keel.context import RunContext
from keel.settings import Settings
from keel.testing.fake_model import FakeChatModel
from keel.tools.from_config import registry_from_config

NOTES = ["notes_list_notes", "notes_read_note", "notes_write_note"]


def _call(tool: str, call_id: str, **args: object) -> AIMessage:
    """A model turn calling `tool` (the notes tools take a `name` argument, so not fake_model.tool_call)."""
    return AIMessage(content="", tool_calls=[{"name": tool, "args": args, "id": call_id}])


def _user() -> str:
    return f"u-{uuid.uuid4().hex[:8]}"


def _writes(folder: Path) -> list[list[str]]:
    log = folder / "notes" / ".writes.log"
    return [line.split("\t") for line in log.read_text().splitlines()] if log.exists() else []


async def test_allow_ask_and_deny_through_the_graph(settings: Settings, tmp_path: Path):
    """A read is allowed, a user's write asks and runs once approved (with keel's idempotency key), a
    viewer's write is denied and never reaches the server; the stdio server stops with keel."""
    folder = tmp_path / "proj"
    config = load_config(notes_project(folder))
    turns = [
        _call("notes_list_notes", call_id="c1"),
        _call("notes_write_note", call_id="c2", name="todo", text="buy milk"),
        "Saved your note.",
        _call("notes_write_note", call_id="v1", name="x", text="nope"),
        "You may not write notes.",
    ]
    model = FakeChatModel(turns)
    async with Keel.open(settings, model=model, model_name="fake-model", config=config) as keel:
        assert keel.backends.registry.names() == NOTES
        out = await keel.run("list my notes, then save one", user_id=_user())
        assert out.status == "awaiting_approval"
        assert out.path == ["recall", "decide", "tool", "decide", "permission_check"]
        assert out.approval["tool"] == "notes_write_note" and out.approval["resource"] == "note:todo"
        assert "idempotency_key" not in out.approval["args"]
        assert _writes(folder) == []  # nothing written while it waits
        done = await keel.decide(
            out.approval["approval_id"], "approve", approver="ops", approver_role="admin"
        )
        assert done.status == "succeeded" and done.answer == "Saved your note."
        assert _writes(folder) == [[f"{out.thread_id}:c2", "todo"]]
        assert (folder / "notes" / "todo.md").read_text() == "buy milk"
        rows = await keel.records.audit_for(thread_id=out.thread_id)
        assert [(r.event, r.tool, r.decision, r.status, r.resource) for r in rows] == [
            ("permission", "notes_list_notes", "allow", None, "notes_list_notes"),
            ("tool_call", "notes_list_notes", None, "ok", "notes_list_notes"),
            ("permission", "notes_write_note", "ask", None, "note:todo"),
            ("approval_decision", "notes_write_note", "approve", "allowed", "note:todo"),
            ("tool_call", "notes_write_note", None, "ok", "note:todo"),
        ]
        listed = [m for m in model.calls[1]["messages"] if getattr(m, "tool_call_id", None) == "c1"]
        assert listed[0].content == "welcome"

        viewer = await keel.run("write x", user_id=_user(), role="viewer")
        assert (viewer.status, viewer.terminated_reason) == ("failed", "tools_refused")
        assert viewer.path == ["recall", "decide", "permission_check", "decide", "finalize"]
        rows = await keel.records.audit_for(thread_id=viewer.thread_id)
        assert [(r.tool, r.decision, r.status) for r in rows] == [("notes_write_note", "deny", "denied")]
        assert len(_writes(folder)) == 1 and server_pids(folder)
    assert server_pids(folder) == []  # Backends.aclose stopped the stdio server


async def test_the_idempotency_key_is_keels_and_hidden_from_the_model(tmp_path: Path):
    folder = tmp_path / "proj"
    config = load_config(notes_project(folder))
    settings = Settings(home=tmp_path / "home")
    async with Keel.open(settings, model=FakeChatModel([]), model_name="fake-model", config=config) as keel:
        schema = keel.backends.registry.get("notes_write_note").schema()["function"]["parameters"]
        assert set(schema["properties"]) == {"name", "text"} and set(schema["required"]) == {"name", "text"}
        run, thread = RunContext(user_id=_user(), role="admin"), str(uuid.uuid4())
        executor = keel.backends.executor
        sneaky = await executor.execute(
            "k0",
            "notes_write_note",
            {"name": "a", "text": "t", "idempotency_key": "mine"},
            run,
            thread,
            deadline=1e12,
        )
        assert sneaky.status == "invalid" and "'idempotency_key' is set by keel" in sneaky.message.content
        first = await executor.execute(
            "k1", "notes_write_note", {"name": "a", "text": "t"}, run, thread, deadline=1e12
        )
        again = await executor.execute(
            "k1", "notes_write_note", {"name": "a", "text": "t"}, run, thread, deadline=1e12
        )
        assert (first.status, again.status) == ("ok", "replayed")
        assert _writes(folder) == [[f"{thread}:k1", "a"]]
        extra = await executor.execute(
            "k2", "notes_read_note", {"name": "a", "x": 1}, run, thread, deadline=1e12
        )
        assert extra.status == "invalid" and "unknown argument(s): x" in extra.message.content
    assert server_pids(folder) == []


async def test_an_error_result_and_a_dead_server_are_failed_calls(tmp_path: Path):
    """`isError` from the server and a killed server process are `failed` calls (audited, counted); the
    next call after the kill reconnects."""
    folder = tmp_path / "proj"
    config = load_config(notes_project(folder))
    settings = Settings(home=tmp_path / "home")
    async with Keel.open(settings, model=FakeChatModel([]), model_name="fake-model", config=config) as keel:
        run, thread = RunContext(user_id=_user(), role="admin"), str(uuid.uuid4())
        executor = keel.backends.executor
        missing = await executor.execute(
            "e1", "notes_read_note", {"name": "nope"}, run, thread, deadline=1e12
        )
        assert missing.status == "failed" and "no note named 'nope'" in missing.message.content
        assert (
            await executor.execute("e2", "notes_list_notes", {}, run, thread, deadline=1e12)
        ).status == "ok"
        (pid,) = server_pids(folder)
        os.kill(pid, signal.SIGKILL)
        dead = await executor.execute("e3", "notes_list_notes", {}, run, thread, deadline=1e12)
        assert dead.status == "failed"
        back = await executor.execute("e4", "notes_list_notes", {}, run, thread, deadline=1e12)
        assert back.status == "ok" and back.message.content == "welcome"
        rows = await keel.records.audit_for(thread_id=thread)
        assert [(r.tool, r.status) for r in rows if r.event == "tool_call"] == [
            ("notes_read_note", "failed"),
            ("notes_list_notes", "ok"),
            ("notes_list_notes", "failed"),
            ("notes_list_notes", "ok"),
        ]
    assert server_pids(folder) == []


async def test_a_streamable_http_server(tmp_path: Path):
    folder = tmp_path / "proj"
    notes_project(folder, pin=False)
    with http_server(folder) as url:
        config = load_config(notes_project(folder, connect=f"url: {url}"))
        model = FakeChatModel([_call("notes_write_note", call_id="h1", name="web", text="over http"), "ok"])
        async with Keel.open(
            Settings(home=tmp_path / "home"), model=model, model_name="fake-model", config=config
        ) as keel:
            assert keel.backends.registry.names() == NOTES
            out = await keel.run("save a note", user_id=_user(), role="admin")
            assert out.status == "succeeded"
            assert _writes(folder) == [[f"{out.thread_id}:h1", "web"]]
            rows = await keel.records.audit_for(thread_id=out.thread_id)
            assert [(r.tool, r.decision, r.status) for r in rows] == [
                ("notes_write_note", "allow", None),
                ("notes_write_note", None, "ok"),
            ]


@pytest.mark.parametrize(
    ("extra", "line", "reason"),
    [
        (
            "  - mcp: {name: notes2, command: python, args: [server.py], tools: [list_notes]}\n"
            "    effect: external\n",
            11,
            "mcp server 'notes2': tool 'list_notes' is declared external but its inputSchema has no string "
            "property 'idempotency_key'",
        ),
        (
            "  - mcp: {name: notes3, command: python, args: [server.py], tools: [read_note]}\n"
            "    effect: read\n    resource: 'note:{title}'\n",
            11,
            "resource template 'note:{title}' names title, which is not a property of its inputSchema "
            "(properties: name)",
        ),
        (
            "  - mcp: {name: notes4, command: python, args: [server.py], tools: [erase]}\n    effect: read\n",
            11,
            "mcp server 'notes4' has no tool 'erase' (its tools: list_notes, read_note, write_note)",
        ),
        ("  - mcp: {name: notes, command: python, args: [x.py]}\n    effect: read\n", 11, "defined twice"),
        ("  - mcp: {name: other, tools: [a]}\n    effect: read\n", 11, "mcp server 'other' is not defined"),
        (
            "  - mcp: {name: notes, tools: [read_note]}\n    effect: read\n",
            11,
            "'notes_read_note' is listed twice",
        ),
        (
            "  - mcp: {name: gone, url: 'http://127.0.0.1:9/mcp'}\n    effect: read\n",
            11,
            "mcp server 'gone': ",
        ),
        (
            "  - mcp: {name: broken, command: no-such-command-xyz}\n    effect: read\n",
            11,
            "mcp server 'broken': ",
        ),
    ],
)
def test_a_bad_mcp_entry_fails_at_start_at_its_line(tmp_path: Path, extra: str, line: int, reason: str):
    folder = tmp_path / "proj"
    path = notes_project(folder, pin=False, extra=extra)
    with contextlib.suppress(ConfigError):  # pinned when the servers can be listed: the entry is the problem
        pin_rows(path)
    with pytest.raises(ConfigError) as info:
        registry_from_config(load_config(path))
    assert (info.value.source, info.value.line) == (str(path), line)
    assert reason in info.value.reason
    assert "\n" not in str(info.value)
    assert server_pids(folder) == []


async def test_the_server_graph_runs_mcp_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """What `langgraph dev` serves: backends built off the event loop (server.start), the MCP session opened
    on the server's loop at the first call, closed with the backends."""
    import keel.app.server_backends as server
    from keel.app.backends import open_checkpointer
    from keel.app.server_graph import always_sync
    from keel.graphs.agent import build_graph

    folder = tmp_path / "proj"
    monkeypatch.setenv("KEEL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KEEL_CONFIG", str(notes_project(folder)))
    monkeypatch.setattr(server, "_built", [])
    b = await server.start()
    try:
        assert b.registry.names() == NOTES
        b.model = FakeChatModel([_call("notes_read_note", "s1", name="welcome"), "It says welcome."])
        b.models = [(b.model_name, b.model)]
        async with open_checkpointer(b.settings) as saver:
            graph = always_sync(build_graph(b, checkpointer=saver))
            ctx = RunContext(user_id=_user(), role="viewer")
            config = {"configurable": {"thread_id": str(uuid.uuid4())}}
            out = await graph.ainvoke({"messages": [("user", "read welcome")]}, config, context=ctx)
        assert out["tools_used"] == ["notes_read_note"]
        rows = await b.records.audit_for(thread_id=config["configurable"]["thread_id"])
        assert [(r.event, r.status) for r in rows] == [("permission", None), ("tool_call", "ok")]
        assert len(server_pids(folder)) == 1
    finally:
        await b.aclose()
    assert server_pids(folder) == []


async def test_a_call_run_again_after_a_crash_writes_once(tmp_path: Path):
    """A call cut by a crash before keel recorded it runs again on resume, with the same key (thread and
    tool call id): the example's server sees the key again and does not write twice."""
    from keel.tools.spec import ToolContext

    folder = tmp_path / "proj"
    config = load_config(notes_project(folder))
    async with Keel.open(
        Settings(home=tmp_path / "home"), model=FakeChatModel([]), model_name="fake-model", config=config
    ) as keel:
        spec = keel.backends.registry.get("notes_write_note")
        args = spec.args_model.model_validate({"name": "once", "text": "first"})
        thread = str(uuid.uuid4())
        ctx = ToolContext(
            run=RunContext(user_id=_user(), role="user"),
            thread_id=thread,
            tool_call_id="w1",
            workspace=keel.backends.workspace,
            records=keel.records,
        )
        assert await spec.run(args, ctx) == "wrote note 'once' (5 characters)"
        again = await spec.run(spec.args_model.model_validate({"name": "once", "text": "second"}), ctx)
        assert again == "note 'once' already written by this request (not written again)"
    assert _writes(folder) == [[f"{thread}:w1", "once"]]
    assert (folder / "notes" / "once.md").read_text() == "first"
