"""Item 1 of the reliability issue: a process killed inside a step resumes from the step before it.

LangGraph's default durability (`async`) writes a step's checkpoint while the next step already runs; a
process killed in that window loses the step, and its execution row is left `running` with no checkpoint
to resume from. The disk here is made slow (every checkpoint write waits 0.3 s), so the window is wide
open on every run: only a run that waits for each checkpoint before the next step (`durability="sync"`)
can be resumed.
"""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import warm_python

from keel.settings import Settings

ROOT = Path(__file__).resolve().parents[2]

_DIE_AFTER_A_SLOW_CHECKPOINT = textwrap.dedent("""
    import asyncio, os, sys
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
    from keel.app.service import Keel
    from keel.settings import Settings
    from keel.testing.fake_model import FakeChatModel

    _put = AsyncSqliteSaver.aput

    async def slow_put(self, *args, **kwargs):
        await asyncio.sleep(0.3)  # a busy disk
        return await _put(self, *args, **kwargs)

    AsyncSqliteSaver.aput = slow_put

    def die(messages):
        os._exit(137)  # killed inside decide's model call, the step after plan

    async def main():
        model = FakeChatModel([die])
        async with Keel.open(Settings(home=sys.argv[1]), model=model, model_name="fake-model") as keel:
            await keel.run("hello", user_id="dora", thread_id=sys.argv[2])

    asyncio.run(main())
""")


async def test_a_run_killed_in_the_step_after_a_slow_checkpoint_resumes(tmp_path: Path):
    thread = "7f0c5a4e-0000-4000-8000-0000000000d1"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}
    argv = [sys.executable, "-c", _DIE_AFTER_A_SLOW_CHECKPOINT, str(tmp_path), thread]
    proc = await asyncio.to_thread(warm_python.run, argv, cwd=ROOT, env=env, timeout=120)
    assert proc.returncode == 137, proc.stderr[-2000:]

    from keel.app.service import Keel
    from keel.testing.fake_model import FakeChatModel

    settings = Settings(home=tmp_path)
    async with Keel.open(settings, model=FakeChatModel(["Hello, Dora."]), model_name="fake-model") as keel:
        snapshot = await keel.graph.aget_state({"configurable": {"thread_id": thread}})
        assert snapshot.next == ("decide",), "plan's checkpoint was lost with the process"
        out = await keel.resume(thread)
    assert out.status == "succeeded" and out.answer == "Hello, Dora."
    assert out.path == ["decide", "finalize"]


async def test_a_step_saved_without_its_checkpoint_is_resumed_not_refused(make_keel, monkeypatch):
    """The checkpoint write after decide fails (a disk or database error) once decide's writes were saved:
    the run stops with one clear line, and `resume` applies the saved writes instead of refusing the
    thread as finished (LangGraph's `next` is empty there; its `tasks` still hold decide)."""
    import sqlite3

    import psycopg

    from keel.errors import StoreUnavailable
    from keel.testing.fake_model import tool_call

    turns = [
        tool_call("send_email", call_id="mail-1", to="bob@example.com", subject="hi", body="hi"),
        "Sent.",
    ]
    async with make_keel(turns) as keel:
        saver = keel.graph.checkpointer
        put, seen = saver.aput, []

        async def failing_put(config, checkpoint, metadata, new_versions):
            seen.append(metadata.get("step"))
            if metadata.get("step") == 3 and seen.count(3) == 1:  # the checkpoint after decide
                raise (
                    sqlite3.OperationalError("disk I/O error")
                    if "Sqlite" in type(saver).__name__
                    else (psycopg.OperationalError("server closed the connection unexpectedly"))
                )
            return await put(config, checkpoint, metadata, new_versions)

        monkeypatch.setattr(saver, "aput", failing_put)
        thread = str(uuid.uuid4())  # the session's postgres database is shared: rows of this test only
        with pytest.raises(StoreUnavailable, match=f"resume with thread {thread}"):
            await keel.run("email bob", user_id="durability-user", role="admin", thread_id=thread)
        out = await keel.resume(thread)
        assert out.status == "succeeded" and out.answer == "Sent."
        assert out.path == ["decide", "tool", "decide", "finalize"]
        assert len(keel.fake_model.calls) == 3  # plan, decide, decide: the saved decide was not re-asked
        assert len(await keel.records.list_outbox(user_id="durability-user")) == 1
