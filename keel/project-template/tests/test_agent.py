"""The agent end to end through keel's library, on the offline scripted model: the tool runs, under the
project's policy, and its call is audited."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from pathlib import Path

from keel import Keel, Settings
from keel.config import load_config

CONFIG = Path(__file__).resolve().parent.parent / "keel.yaml"


async def _run(home: Path, task: str, role: str = "user"):
    # The scripted model whatever keel.yaml names, so the test stays offline (no key, no network).
    config = dataclasses.replace(load_config(CONFIG), model="scripted:keel-scripted")
    async with Keel.open(Settings(home=home), config=config) as keel:
        out = await keel.run(task, user_id=f"test-{uuid.uuid4().hex[:8]}", role=role)
        rows = await keel.records.audit_for(thread_id=out.thread_id)
    return out, rows


def test_the_agent_looks_up_an_order(tmp_path: Path) -> None:
    out, rows = asyncio.run(_run(tmp_path / ".keel", "lookup_order order_id=A1"))
    assert out.status == "succeeded", out.answer
    assert "order A1: shipped" in out.answer
    assert out.path.count("tool") == 1
    assert [(r.event, r.tool, r.status) for r in rows if r.event == "tool_call"] == [
        ("tool_call", "lookup_order", "ok")
    ]
