"""examples/support_desk end to end: offline through the `keel` CLI as its README shows (a lookup exits 0,
a refund pauses for approval with exit 3, the approval resumes it, one refund row), and through the real
ChatOpenAI client against the test OpenAI-compatible server (lookup, refund under approval, close)."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import warm_python

from keel.app.service import Keel
from keel.config import load_config
from keel.context import RunContext
from keel.costs import PriceTable
from keel.hotstate import LimitsPolicy
from keel.policies import PolicyMatrix
from keel.settings import Settings
from keel.testing.openai_server import FakeOpenAIServer, Reply

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "support_desk"
CONFIG = EXAMPLE / "keel.yaml"
KEEL = Path(sys.executable).with_name("keel")
TOOLS = {"lookup_order", "list_tickets", "read_ticket", "refund_order", "close_ticket"}


def _rows(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture
def desk_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example's database, seeded, for this test only (its tools read $SUPPORT_DESK_DB at each call)."""
    db = tmp_path / "desk.sqlite"
    monkeypatch.setenv("SUPPORT_DESK_DB", str(db))
    monkeypatch.syspath_prepend(str(EXAMPLE))
    from support_desk.db import connect

    with connect():
        pass
    return db


def test_the_config_and_its_files_validate() -> None:
    config = load_config(CONFIG)
    assert config.agent.name == "support-desk" and config.model == "scripted:keel-scripted"
    assert {t.target.rpartition(":")[2]: t.effect for t in config.tools} == {
        "lookup_order": "read",
        "list_tickets": "read",
        "read_ticket": "read",
        "refund_order": "external",
        "close_ticket": "idempotent",
    }
    matrix = PolicyMatrix.load(config.policy)
    decide = matrix.decide
    assert decide("user", "lookup_order", "order:1001").effect == "allow"
    assert decide("user", "refund_order", "order:1001").effect == "ask"
    assert decide("viewer", "refund_order", "order:1001").effect == "deny"
    assert decide("viewer", "close_ticket", "ticket:7").effect == "deny"
    assert "gpt-4o-mini" in PriceTable.load(config.prices).models
    LimitsPolicy.load(config.limits)


@pytest.mark.slow
def test_offline_cli_lookup_refund_pauses_approval_refunds_once(tmp_path: Path) -> None:
    """The README's commands, from the repository's root: exit 0, exit 3, approve (exit 0), one refund."""
    db = tmp_path / "desk.sqlite"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}
    env |= {"KEEL_HOME": str(tmp_path / "home"), "KEEL_EMBEDDINGS": "hashing", "SUPPORT_DESK_DB": str(db)}

    def keel(*argv: str) -> subprocess.CompletedProcess[str]:
        return warm_python.run([sys.executable, KEEL, *argv], cwd=ROOT, env=env, timeout=120)

    user = f"alice-{uuid.uuid4().hex[:8]}"
    looked = keel("run", "--config", str(CONFIG), "--json", "--user", user, "lookup_order order_id=1001")
    assert looked.returncode == 0, looked.stderr
    assert "order 1001: standing desk for alice, total $420.00" in json.loads(looked.stdout)["answer"]

    paused = keel(
        "run", "--config", str(CONFIG), "--json", "--user", user, "refund_order order_id=1001 amount=20"
    )
    assert paused.returncode == 3, paused.stdout + paused.stderr
    approval = json.loads(paused.stdout)["approval"]
    assert (approval["tool"], approval["resource"]) == ("refund_order", "order:1001")
    assert _rows(db, "SELECT count(*) FROM refunds") == [(0,)]

    listed = keel("--config", str(CONFIG), "approvals", "list", "--json")
    assert [a["approval_id"] for a in json.loads(listed.stdout)] == [approval["approval_id"]]
    approved = keel(
        "--config", str(CONFIG), "approvals", "approve", approval["approval_id"],
        "--args-hash", approval["args_hash"], "--approver", "ops", "--json",
    )  # fmt: skip
    assert approved.returncode == 0, approved.stdout + approved.stderr
    assert "refund #1: $20.00 on order 1001" in json.loads(approved.stdout)["answer"]
    assert _rows(db, "SELECT order_id, amount FROM refunds") == [(1001, 20.0)]
    ((key,),) = _rows(db, "SELECT idempotency_key FROM refunds")
    assert key.startswith(f"{approval['thread_id']}:")  # keel's key for the call: <thread>:<tool call id>

    again = keel(
        "--config", str(CONFIG), "approvals", "approve", approval["approval_id"], "--approver", "ops"
    )
    assert again.returncode == 1 and "was already approved" in again.stderr
    assert _rows(db, "SELECT count(*) FROM refunds") == [(1,)]


def _openai_settings(tmp_path: Path, server: FakeOpenAIServer) -> Settings:
    return Settings(
        home=tmp_path / "home",
        embeddings="hashing",
        model_provider="openai",
        openai_base_url=server.base_url,
        openai_api_key="test-key",
    )


async def test_over_chat_openai_lookup_refund_approved_close(
    tmp_path: Path, server: FakeOpenAIServer, desk_db: Path
) -> None:
    """The model (scripted replies through the real ChatOpenAI client) looks the order up, refunds it
    (a user's refund asks: the run pauses, a supervisor approves, it runs once) and closes the ticket."""
    config = dataclasses.replace(load_config(CONFIG), model="openai:gpt-4o-mini")
    server.enqueue(
        Reply(tool_calls=[("c1", "lookup_order", {"order_id": 1001})]),
        Reply(tool_calls=[("c2", "refund_order", {"order_id": 1001, "amount": 20})]),
    )
    user = f"alice-{uuid.uuid4().hex[:8]}"
    async with Keel.open(_openai_settings(tmp_path, server), config=config) as keel:
        paused = await keel.run("Ticket 7: refund $20 on order 1001 and close it.", user_id=user)
        assert paused.status == "awaiting_approval", paused.answer
        assert paused.path == ["recall", "decide", "tool", "decide", "permission_check"]
        assert _rows(desk_db, "SELECT count(*) FROM refunds") == [(0,)]

        server.enqueue(
            Reply(tool_calls=[("c3", "close_ticket", {"ticket_id": 7, "resolution": "refunded $20"})]),
            Reply(content="Refunded $20 on order 1001 and closed ticket 7."),
        )
        done = await keel.decide(
            paused.approval["approval_id"], "approve", approver="ops", approver_role="admin"
        )
        rows = await keel.records.audit_for(thread_id=paused.thread_id)

    assert (done.status, done.answer) == ("succeeded", "Refunded $20 on order 1001 and closed ticket 7.")
    assert done.path == ["approval", "tool", "decide", "tool", "decide", "finalize"]
    assert _rows(desk_db, "SELECT order_id, amount, idempotency_key FROM refunds") == [
        (1001, 20.0, f"{paused.thread_id}:c2")  # keel's key for the call reached the tool
    ]
    assert _rows(desk_db, "SELECT status, resolution FROM tickets WHERE id = 7") == [
        ("closed", "refunded $20")
    ]

    first_decide = server.requests[0]
    schemas = {t["function"]["name"]: t["function"]["parameters"] for t in first_decide["tools"]}
    assert set(schemas) == TOOLS
    assert set(schemas["refund_order"]["properties"]) == {"order_id", "amount"}  # the key is keel's
    system = first_decide["messages"][0]
    assert system["role"] == "system" and "You are the support desk" in system["content"]  # agent.prompt
    tool_result = server.requests[1]["messages"][-1]
    assert tool_result["role"] == "tool" and "standing desk for alice" in tool_result["content"]

    trail = [(r.event, r.tool, r.decision, r.status) for r in rows if r.event != "approval_requested"]
    assert trail == [
        ("permission", "lookup_order", "allow", None),
        ("tool_call", "lookup_order", None, "ok"),
        ("permission", "refund_order", "ask", None),
        ("approval_decision", "refund_order", "approve", "allowed"),
        ("tool_call", "refund_order", None, "ok"),
        ("permission", "close_ticket", "allow", None),
        ("tool_call", "close_ticket", None, "ok"),
    ]
    assert next(r for r in rows if r.event == "approval_decision").approver == "ops"


async def test_a_viewer_is_denied_the_refund_and_nothing_moves(
    tmp_path: Path, server: FakeOpenAIServer, desk_db: Path
) -> None:
    config = dataclasses.replace(load_config(CONFIG), model="openai:gpt-4o-mini")
    server.enqueue(
        Reply(tool_calls=[("c1", "refund_order", {"order_id": 1001, "amount": 20})]),
        Reply(content="I may not refund orders."),
    )
    async with Keel.open(_openai_settings(tmp_path, server), config=config) as keel:
        out = await keel.run("refund 20 on 1001", user_id=f"v-{uuid.uuid4().hex[:8]}", role="viewer")
        rows = await keel.records.audit_for(thread_id=out.thread_id)
    assert "approval" not in out.path and "tool" not in out.path
    assert [(r.event, r.tool, r.status) for r in rows if r.event == "permission"] == [
        ("permission", "refund_order", "denied")
    ]
    assert _rows(desk_db, "SELECT count(*) FROM refunds") == [(0,)]


async def test_a_refund_run_again_with_its_key_refunds_once(tmp_path: Path, desk_db: Path) -> None:
    """What a crash between the refund and keel's record of it leads to: the call runs again with the same
    idempotency key, and the desk returns the first refund instead of making a second. A new call (a new
    key) is a new refund, and never more than the order has left."""
    from support_desk.tools import refund_order

    config = load_config(CONFIG)
    settings = Settings(home=tmp_path / "home", embeddings="hashing")
    async with Keel.open(settings, config=config) as keel:
        run = RunContext(user_id=f"u-{uuid.uuid4().hex[:8]}", role="admin")
        thread = str(uuid.uuid4())
        args = {"order_id": 1002, "amount": 30, "idempotency_key": "made-up-by-the-model"}
        first = await keel.backends.executor.execute("r1", "refund_order", args, run, thread, deadline=1e12)
    assert first.status == "ok" and first.message.content == "refund #1: $30.00 on order 1002"
    key = f"{thread}:r1"
    assert _rows(desk_db, "SELECT idempotency_key FROM refunds") == [(key,)]

    assert refund_order(1002, 30, key) == first.message.content  # the re-run after a crash
    assert _rows(desk_db, "SELECT count(*) FROM refunds") == [(1,)]
    with pytest.raises(ValueError, match=r"order 1002 has only \$5.50 left to refund"):
        refund_order(1002, 30, f"{thread}:r2")
    assert refund_order(1002, 5.5, f"{thread}:r3") == "refund #2: $5.50 on order 1002"
