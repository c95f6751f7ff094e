"""The process approving a request is killed right after recording the decision: `keel resume` finishes it."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import warm_python
from typer.testing import CliRunner

from keel.cli import app

ROOT = Path(__file__).resolve().parents[2]

# `keel approvals approve`, killed (os._exit) at the moment it would resume the thread: after the UPDATE.
_APPROVE_THEN_DIE = """
import os, sys
from langgraph.types import Command
from keel.app import service

drive = service.Keel._drive

async def die_before_resuming(self, payload, *args, **kwargs):
    if isinstance(payload, Command):
        os._exit(9)
    return await drive(self, payload, *args, **kwargs)

service.Keel._drive = die_before_resuming
from keel.cli import app
app(["approvals", "approve", sys.argv[1], "--approver", "ops"])
"""


def test_keel_resume_carries_out_a_decision_whose_approver_died(tmp_path: Path) -> None:
    home = tmp_path / "home"
    draft = home / "workspace" / "home" / "alice" / "draft.md"
    draft.parent.mkdir(parents=True)
    draft.write_text("old")
    env = {"KEEL_HOME": str(home), "COLUMNS": "200"}
    runner = CliRunner()

    def cli(*args: str):
        return runner.invoke(app, list(args), env=env)

    paused = json.loads(cli("run", "delete ~/draft.md", "--user", "alice", "--json").stdout)
    assert paused["status"] == "awaiting_approval"
    approval_id, thread = paused["approval"]["approval_id"], paused["thread_id"]
    child_env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    killed = warm_python.run([sys.executable, "-c", _APPROVE_THEN_DIE, approval_id], env=child_env, cwd=ROOT)
    assert killed.returncode == 9 and draft.exists()
    listed = json.loads(cli("approvals", "list", "--json").stdout)
    assert approval_id not in [a["approval_id"] for a in listed]  # recorded as decided

    resumed = cli("resume", thread, "--json")
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["status"] == "succeeded"
    assert not draft.exists()
    rows = json.loads(cli("audit", "tail", "--thread", thread, "--json").stdout)
    assert [(r["event"], r["approver"]) for r in rows if r["event"] != "permission"] == [
        ("approval_decision", "ops"),
        ("tool_call", None),
    ]
