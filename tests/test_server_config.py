"""`langgraph dev` serves the graph of a project's keel.yaml: its own tools (a module beside the config),
its policy (allow, ask), found by $KEEL_CONFIG; driven with langgraph-sdk as a deployed graph is."""

from __future__ import annotations

from pathlib import Path

import pytest
from langgraph_sdk import get_client
from live_server import langgraph_dev

pytestmark = pytest.mark.slow
ALICE = "alice-dev-key"

TOOLS = '''\
ORDERS = {"A1": "shipped"}


def lookup_order(order_id: str) -> str:
    """Look up an order's status."""
    return f"order {order_id}: {ORDERS.get(order_id, 'unknown')}"


def refund_order(order_id: str, amount: float, idempotency_key: str) -> str:
    """Refund an amount on an order."""
    return f"refunded {amount} on {order_id}"
'''
POLICY = """\
version: 1
roles: [admin, user]
rules:
  - {role: user, tool: lookup_order, resource: "order:*", effect: allow}
  - {role: user, tool: refund_order, resource: "*", effect: ask}
"""
CONFIG = """\
agent: {name: live-desk, plan: false}
model: scripted:keel-scripted
tools:
  - {import: "live_desk_tools:lookup_order", effect: read, resource: "order:{order_id}"}
  - {import: "live_desk_tools:refund_order", effect: external, resource: "refund:{order_id}"}
policy: policy.yaml
"""


async def _run(client, thread: str, task: str) -> tuple[list[str], dict | None, dict]:
    seen: list[str] = []
    interrupt = None
    payload = {"messages": [{"role": "human", "content": task}]}
    async for part in client.runs.stream(thread, "keel", input=payload, stream_mode="updates"):
        if part.event == "updates":
            seen.extend(part.data)
            if "__interrupt__" in part.data:
                interrupt = part.data["__interrupt__"][0]["value"]
    state = await client.threads.get_state(thread)
    return seen, interrupt, state


async def test_langgraph_dev_serves_the_graph_of_a_keel_yaml(tmp_path: Path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "live_desk_tools.py").write_text(TOOLS, encoding="utf-8")
    (project / "policy.yaml").write_text(POLICY, encoding="utf-8")
    (project / "keel.yaml").write_text(CONFIG, encoding="utf-8")
    home = tmp_path / "home"
    home.mkdir()
    with langgraph_dev(home, env={"KEEL_CONFIG": str(project / "keel.yaml")}) as url:
        alice = get_client(url=url, api_key=ALICE)
        thread = (await alice.threads.create())["thread_id"]
        seen, interrupt, state = await _run(alice, thread, "lookup_order order_id=A1")
        assert seen.count("tool") == 1 and seen[-1] == "finalize", seen
        assert "lookup_order A1: done — order A1: shipped" in state["values"]["messages"][-1]["content"]

        thread = (await alice.threads.create())["thread_id"]
        seen, interrupt, _ = await _run(alice, thread, "refund_order order_id=A1 amount=5")
        assert "tool" not in seen, seen
        assert interrupt is not None and interrupt["tool"] == "refund_order", interrupt
        assert interrupt["args"] == {"order_id": "A1", "amount": "5"}  # the key keel fills is not the model's
