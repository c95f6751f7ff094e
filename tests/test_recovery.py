"""Recovery: a crash mid-step never repeats a side effect; a paused run survives a process restart."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
from pathlib import Path

import pytest
import warm_python
from pydantic import BaseModel

from keel.settings import Settings
from keel.testing.fake_model import tool_call
from keel.tools.registry import default_registry
from keel.tools.spec import ToolSpec

ROOT = Path(__file__).resolve().parent.parent


class _Crash(BaseException):
    """Stands for the process dying: not an Exception, so nothing in keel catches it."""


class _NoArgs(BaseModel):
    pass


def crashing_tool(state: dict) -> ToolSpec:
    async def run(args: _NoArgs, ctx) -> str:
        if not state.get("crashed"):
            state["crashed"] = True
            raise _Crash
        return "fine this time"

    return ToolSpec(
        name="read_flaky",
        description="crashes once",
        args_model=_NoArgs,
        run=run,
        resource=lambda a, r, w: "shared:flaky",
    )


async def test_side_effect_done_before_a_crash_is_not_repeated(make_keel):
    """send_email commits its outbox row and its tool_results row together; the resumed run replays it."""
    email = tool_call("send_email", call_id="mail-1", to="bob@example.com", subject="hi", body="hello bob")
    flaky = tool_call("read_flaky", call_id="flaky-1")
    turn = email.model_copy(update={"tool_calls": [*email.tool_calls, *flaky.tool_calls]})
    crash_state: dict = {}
    registry = default_registry().with_tools(crashing_tool(crash_state))
    async with make_keel([turn, "Sent."], registry=registry) as keel:
        with pytest.raises(_Crash):
            await keel.run("email bob", user_id="carol", role="admin")
        assert len(await keel.records.list_outbox(user_id="carol")) == 1
        thread = (await keel.records.list_executions(user_id="carol"))[0].thread_id
        snapshot = await keel.graph.aget_state({"configurable": {"thread_id": thread}})
        assert snapshot.next == ("tool",)

        out = await keel.resume(thread)
        assert out.status == "succeeded" and out.path == ["tool", "decide", "finalize"]
        assert len(await keel.records.list_outbox(user_id="carol")) == 1
        statuses = [
            (r.tool, r.status)
            for r in await keel.records.audit_for(thread_id=thread)
            if r.event == "tool_call"
        ]
        assert statuses == [("send_email", "ok"), ("send_email", "replayed"), ("read_flaky", "ok")]


_PAUSE_SCRIPT = textwrap.dedent("""
    import asyncio, json, sys
    from keel.app.service import Keel
    from keel.settings import Settings
    from keel.testing.fake_model import FakeChatModel, tool_call

    async def main():
        settings = Settings(profile="postgres", database_url=sys.argv[1], home=sys.argv[2])
        model = FakeChatModel([tool_call("delete_file", call_id="del-1", path="~/draft.md")])
        async with Keel.open(settings, model=model, model_name="fake-model") as keel:
            out = await keel.run("delete my draft", user_id="alice")
            print(json.dumps(out.as_dict()), flush=True)
            if len(sys.argv) > 3:
                import os
                os._exit(137)  # die with connections open, no clean-up

    asyncio.run(main())
""")


@pytest.mark.postgres
@pytest.mark.parametrize("hard_kill", [False, True])
async def test_paused_run_survives_a_process_restart(pg_url: str, tmp_path: Path, hard_kill: bool):
    ws = tmp_path / "workspace" / "home" / "alice"
    ws.mkdir(parents=True)
    (ws / "draft.md").write_text("old")
    argv = [sys.executable, "-c", _PAUSE_SCRIPT, pg_url, str(tmp_path)] + (["kill"] if hard_kill else [])
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}
    proc = await asyncio.to_thread(warm_python.run, argv, cwd=ROOT, env=env, timeout=120)
    assert proc.returncode == (137 if hard_kill else 0), proc.stderr[-2000:]
    paused = json.loads(proc.stdout.strip().splitlines()[-1])
    assert paused["status"] == "awaiting_approval"

    from keel.app.service import Keel
    from keel.testing.fake_model import FakeChatModel

    settings = Settings(profile="postgres", database_url=pg_url, home=tmp_path)
    async with Keel.open(settings, model=FakeChatModel(["Deleted."]), model_name="fake-model") as keel:
        done = await keel.decide(
            paused["approval"]["approval_id"], "approve", approver="ops", approver_role="admin"
        )
    assert done.status == "succeeded" and done.answer == "Deleted."
    assert done.path == ["approval", "tool", "decide", "finalize"]
    assert not (ws / "draft.md").exists()


_DIE_IN_MODEL_CALL = textwrap.dedent("""
    import asyncio, os, sys
    from keel.app.service import Keel
    from keel.settings import Settings
    from keel.testing.fake_model import FakeChatModel

    def die(messages):
        os._exit(137)  # the process dies inside the model call, after its reservation

    async def main():
        model = FakeChatModel([die])
        async with Keel.open(Settings(home=sys.argv[1]), model=model, model_name="fake-model") as keel:
            await keel.run("hello", user_id="dora", thread_id=sys.argv[2])

    asyncio.run(main())
""")


async def test_a_reservation_held_by_a_dead_process_is_released_on_resume(tmp_path: Path):
    thread = "7f0c5a4e-0000-4000-8000-000000000001"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}
    argv = [sys.executable, "-c", _DIE_IN_MODEL_CALL, str(tmp_path), thread]
    proc = await asyncio.to_thread(warm_python.run, argv, cwd=ROOT, env=env, timeout=120)
    assert proc.returncode == 137, proc.stderr[-2000:]

    from keel.app.service import Keel
    from keel.testing.fake_model import FakeChatModel

    settings = Settings(home=tmp_path)
    async with Keel.open(settings, model=FakeChatModel(["Hello, Dora."]), model_name="fake-model") as keel:
        ledger = keel.backends.guards.ledger
        assert (await ledger.status("dora")).reserved > 0
        out = await keel.resume(thread)
        assert out.status == "succeeded" and out.answer == "Hello, Dora."
        status = await ledger.status("dora")
        assert status.reserved == 0
        released = [e for e in await ledger.history("dora", limit=100) if e.status == "released"]
        assert len(released) == 1
