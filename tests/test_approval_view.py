"""Issue 11, item 9: the approver sees exactly what will be done; a secret stays hidden, and the approver
is told which field was hidden. Args and resource follow the same rule; the audit row may redact more."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage
from typer.testing import CliRunner

from keel.app.service import Keel
from keel.approvals import approval_view
from keel.cli import app
from keel.identity import Principal
from keel.records import Approval
from keel.redaction import REDACTED, for_approver, hidden_fields
from keel.render import approvals_table
from keel.server.inbox import visible_approvals
from keel.settings import Settings

KEY = "sk-proj-Qm7Lp2Xv9Tr4Wz8Nk3Hb6Jd1Fs5Gc0AeYu"


def _email(body: str) -> AIMessage:
    args = {"to": "bob@example.com", "subject": "Q3 numbers", "body": body}
    return AIMessage(content="", tool_calls=[{"name": "send_email", "args": args, "id": "call_mail"}])


async def _paused(make_keel: Any, body: str) -> tuple[Any, Approval, list[Any]]:
    async with make_keel([_email(body), "sent"]) as keel:
        out = await keel.run("mail bob the numbers", user_id="alice")
        row = await keel.records.get_approval(out.approval["approval_id"])
        audit = await keel.records.audit_for(execution_id=out.execution_id)
    assert out.status == "awaiting_approval" and row is not None
    return out, row, audit


async def test_the_approver_sees_the_recipient_in_args_and_resource(make_keel) -> None:
    out, row, _ = await _paused(make_keel, "Revenue is up 12%.")
    for shown in (out.approval, approval_view(row)):
        assert shown["args"] == {
            "to": "bob@example.com",
            "subject": "Q3 numbers",
            "body": "Revenue is up 12%.",
        }
        assert "bob@example.com" in shown["resource"]
        assert shown["hidden"] == []
    assert "bob@example.com" in row.reason


async def test_a_secret_in_the_args_is_hidden_and_the_approver_is_told(make_keel) -> None:
    out, row, audit = await _paused(make_keel, f"use key {KEY} for the API")
    for shown in (out.approval, approval_view(row)):
        assert shown["args"]["body"] == f"use key {REDACTED} for the API"
        assert shown["args"]["to"] == "bob@example.com"
        assert shown["hidden"] == ["args.body"]
    table = _rendered(approvals_table([row]))
    assert "bob@example.com" in table and "hidden: args.body" in table and KEY not in table
    assert not any(KEY in str(r.args) or KEY in str(r.resource) for r in audit)


def test_args_and_resource_follow_one_rule() -> None:
    shown = for_approver({"args": {"to": "a@b.co", "path": f"~/{KEY}.md"}, "resource": f"own:{KEY}.md"})
    assert shown == {"args": {"to": "a@b.co", "path": f"~/{REDACTED}.md"}, "resource": f"own:{REDACTED}.md"}
    assert hidden_fields(shown) == ["args.path", "resource"]


def test_the_interrupt_the_inbox_and_the_cli_show_one_view(tmp_path: Path) -> None:
    """One paused call: what the node interrupts with, what the inbox answers and what `keel approvals
    list --json` prints are the same view (keys, hidden list, args_hash), built in one place."""
    runner, env = CliRunner(), {"KEEL_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    task = f"email bob@example.com about keys: use key {KEY} for the API"
    ran = runner.invoke(app, ["run", task, "--user", "alice", "--json"], env=env)
    assert ran.exit_code == 3, ran.output
    interrupted = json.loads(ran.stdout)["approval"]
    listed = runner.invoke(app, ["approvals", "list", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    (cli_view,) = json.loads(listed.stdout)

    async def inbox() -> list[Approval]:
        async with Keel.open(Settings(home=tmp_path / "home")) as keel:
            ops = Principal(user_id="ops", role="admin")
            b = keel.backends
            return await visible_approvals(b.records, b.policy.current(), ops, status="pending", limit=10)

    (inbox_view,) = [json.loads(json.dumps(approval_view(r))) for r in asyncio.run(inbox())]  # as sent

    assert interrupted == cli_view == inbox_view
    assert interrupted["hidden"] == ["args.body"] and KEY not in json.dumps(interrupted)
    assert len(interrupted["args_hash"]) == 64


def _rendered(table: Any) -> str:
    from rich.console import Console

    console = Console(width=400, record=True)
    console.print(table)
    return console.export_text()
