"""examples/notes_mcp end to end: its committed pins match its server; offline with the scripted model
(`keel run --config examples/notes_mcp/keel.yaml`); and through the real ChatOpenAI client against the local
OpenAI-compatible server, whose replies call the MCP tools: a read allowed, a user's write asking and
written once on approval, a viewer's write denied. Runs over a copy of the example (its notes stay clean)."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

from mcp_support import EXAMPLE, server_pids
from typer.testing import CliRunner

from keel.app.service import Keel
from keel.cli import app
from keel.config import load_config
from keel.settings import Settings
from keel.testing.openai_server import FakeOpenAIServer, Reply
from keel.tools.from_config import registry_from_config


def _copy(tmp_path: Path, model: str | None = None) -> Path:
    folder = tmp_path / "notes_mcp"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("__pycache__"))
    for extra in (folder / "notes").iterdir():
        if extra.name != "welcome.md":
            extra.unlink()
    config = folder / "keel.yaml"
    if model is not None:
        text = config.read_text(encoding="utf-8").replace("model: scripted:keel-scripted", f"model: {model}")
        config.write_text(text, encoding="utf-8")
    return folder


def test_the_committed_pins_match_the_server(tmp_path: Path):
    folder = _copy(tmp_path)
    names = registry_from_config(load_config(folder / "keel.yaml")).names()
    assert names == ["notes_list_notes", "notes_read_note", "notes_write_note"]
    assert server_pids(folder) == []  # listing at start leaves no process behind


def test_offline_run_lists_the_notes(tmp_path: Path, monkeypatch):
    folder = _copy(tmp_path)
    monkeypatch.setenv("KEEL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KEEL_CONFIG", raising=False)
    args = ["run", "--config", str(folder / "keel.yaml"), "--json", "--user", "alice", "notes_list_notes"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["status"] == "succeeded" and "- notes_list_notes : done — welcome" in out["answer"]
    assert server_pids(folder) == []


async def test_the_example_over_chat_openai(tmp_path: Path, server: FakeOpenAIServer):
    folder = _copy(tmp_path, model="openai:fake-model")
    settings = Settings(home=tmp_path / "home", openai_base_url=server.base_url, openai_api_key="test-key")
    server.enqueue(
        Reply(tool_calls=[("c1", "notes_list_notes", {})]),
        Reply(tool_calls=[("c2", "notes_write_note", {"name": "plan", "text": "ship on Friday"})]),
        Reply(content="Saved your note 'plan'."),
        Reply(tool_calls=[("v1", "notes_write_note", {"name": "x", "text": "no"})]),
        Reply(content="Viewers cannot write notes."),
    )
    async with Keel.open(settings, config=load_config(folder / "keel.yaml")) as keel:
        out = await keel.run("list my notes and save a plan", user_id=f"u-{uuid.uuid4().hex[:8]}")
        assert out.status == "awaiting_approval" and out.approval["tool"] == "notes_write_note"
        assert not (folder / "notes" / "plan.md").exists()
        done = await keel.decide(
            out.approval["approval_id"], "approve", approver="ops", approver_role="admin"
        )
        assert done.status == "succeeded" and done.answer == "Saved your note 'plan'."
        viewer = await keel.run("save x", user_id=f"u-{uuid.uuid4().hex[:8]}", role="viewer")
        assert viewer.answer == "Viewers cannot write notes."
        rows = await keel.records.audit_for(thread_id=viewer.thread_id)
        assert [(r.tool, r.decision) for r in rows] == [("notes_write_note", "deny")]
    assert (folder / "notes" / "plan.md").read_text() == "ship on Friday"
    assert (folder / "notes" / ".writes.log").read_text() == f"{out.thread_id}:c2\tplan\n"
    first, second, *_ = server.requests
    tools = {t["function"]["name"]: t["function"] for t in first["tools"]}
    assert set(tools) == {"notes_list_notes", "notes_read_note", "notes_write_note"}
    assert set(tools["notes_write_note"]["parameters"]["properties"]) == {"name", "text"}  # no key shown
    assert second["messages"][-1] == {"role": "tool", "content": "welcome", "tool_call_id": "c1"}
    assert not (folder / "notes" / "x.md").exists()
    assert server_pids(folder) == []
