"""kill -9 in the middle of a tool call, one drill per effect class, then a new process resumes the run.

The model asks, in one turn, for `fetch_order` (read) and then the tool of the class under test; that
tool does its effect and the process dies (SIGKILL) before keel records the call. The resuming process
re-runs the step: the read call, recorded before the kill, is replayed (it does not run again); the
killed call runs again, and what the world sees is what its class promises:

- idempotent: it ran twice, its effect is as if once;
- external: it ran twice with the same idempotency key, so the provider charged once;
- transactional: its first write died with the uncommitted transaction: one row in the end.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import warm_python
from sqlalchemy import text

from keel.records import Records
from keel.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
WORKER = Path(__file__).resolve().parent / "_effects_worker.py"

POLICY = """\
version: 1
roles: [admin, user]
rules:
  - {role: user, tool: "*", resource: "*", effect: allow}
"""
CONFIG = """\
agent: {name: effects-drill, plan: false}
tools:
  - {import: "effect_tools:fetch_order", effect: read}
  - {import: "effect_tools:set_status", effect: idempotent}
  - {import: "effect_tools:charge_card", effect: external}
  - {import: "effect_tools:note_order", effect: transactional}
policy: policy.yaml
"""
CALLS = {
    "set_status": {"order_id": "A1", "status": "shipped"},
    "charge_card": {"order_id": "A1", "amount": 12.5},
    "note_order": {"order_id": "A1", "note": "gift wrap"},
}


def _settings_of(settings: Settings) -> dict[str, Any]:
    plan = {"home": str(settings.home), "profile": settings.profile}
    if settings.profile == "postgres":
        plan.update(database_url=settings.database_url, redis_prefix=settings.redis_prefix)
    return plan


def _worker(plan: dict[str, Any], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return warm_python.run([sys.executable, str(WORKER), json.dumps(plan)], env=env, timeout=120, cwd=ROOT)


def _attempts(world: Path) -> list[tuple[str, str | None]]:
    with sqlite3.connect(world) as conn:
        return list(conn.execute("SELECT tool, key FROM attempts ORDER BY rowid"))


@pytest.mark.postgres
@pytest.mark.parametrize("tool", ["set_status", "charge_card", "note_order"])
async def test_a_killed_tool_call_resumes_by_its_effect_class(pg_url: str, tmp_path: Path, tool: str) -> None:
    # The production profile only: PostgreSQL checkpoints and records (the embedded profile runs the same
    # executor; tests/test_tools_config.py covers its replay in one process).
    settings = Settings(
        profile="postgres",
        database_url=pg_url,
        home=tmp_path / "home",
        redis_prefix=f"kt:{uuid.uuid4().hex[:8]}:",
    )
    project = tmp_path / "project"
    project.mkdir()
    (project / "policy.yaml").write_text(POLICY, encoding="utf-8")
    (project / "keel.yaml").write_text(CONFIG, encoding="utf-8")
    world = tmp_path / "world.sqlite"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}
    env.update(
        PYTHONPATH=f"{ROOT}{os.pathsep}{DATA}",
        EFFECT_WORLD=str(world),
        EFFECT_KILL=tool,
        EFFECT_KILL_MARK=str(tmp_path / "killed"),
    )
    thread = str(uuid.uuid4())
    turn = [["fetch_order", "c-read", {"order_id": "A1"}], [tool, "c-effect", CALLS[tool]]]
    plan = {
        "settings": _settings_of(settings),
        "config": str(project / "keel.yaml"),
        "thread": thread,
        "user": f"u-{uuid.uuid4().hex[:8]}",
        "turns": [turn, "All done."],
        "mode": "run",
    }
    killed = _worker(plan, env)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert (tmp_path / "killed").exists()

    resumed = _worker({**plan, "mode": "resume", "turns": ["All done."]}, env)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads(resumed.stdout.strip().splitlines()[-1]) == {
        "status": "succeeded",
        "answer": "All done.",
    }

    attempts = _attempts(world)
    assert [t for t, _ in attempts].count("fetch_order") == 1  # recorded before the kill: replayed
    assert [t for t, _ in attempts if t != "fetch_order"] == [tool, tool]  # cut by the kill: ran again
    records = Records.from_url(settings.records_url)
    try:
        rows = await records.audit_for(thread_id=thread)
        calls = [(r.tool, r.tool_call_id, r.status) for r in rows if r.event == "tool_call"]
        assert calls == [
            ("fetch_order", "c-read", "ok"),
            ("fetch_order", "c-read", "replayed"),
            (tool, "c-effect", "ok"),
        ]
        result = await records.get_tool_result(thread, "c-effect")
        assert result is not None and result.status == "ok"
        async with records.transaction() as conn:
            notes = (await conn.execute(text("SELECT count(*) FROM effect_drill_notes"))).scalar_one()
    finally:
        await records.close()
    with sqlite3.connect(world) as conn:
        charges = list(conn.execute("SELECT key, amount FROM charges"))
        status = list(conn.execute("SELECT order_id, status FROM status"))
    if tool == "set_status":
        assert status == [("A1", "shipped")]
    if tool == "charge_card":
        keys = [k for t, k in attempts if t == "charge_card"]
        assert keys == [f"{thread}:c-effect"] * 2  # the same key on the re-run
        assert charges == [(f"{thread}:c-effect", 12.5)]
    else:
        assert charges == []
    assert notes == (1 if tool == "note_order" else 0)
