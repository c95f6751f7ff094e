"""Guards on a run: fallback chain and breakers over the real ChatOpenAI, tool rate limits and
breakers told to the model, and fail-closed when Redis goes away mid-run."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from pydantic import BaseModel

from keel.app.service import Keel
from keel.settings import Settings
from keel.testing.fake_model import tool_call
from keel.testing.openai_server import FakeOpenAIServer, Fault, Reply
from keel.tools.registry import default_registry
from keel.tools.spec import ToolSpec


def _openai(tmp_path: Path, server: FakeOpenAIServer, **extra) -> Settings:
    return Settings(
        home=tmp_path,
        model_provider="openai",
        openai_base_url=server.base_url,
        model="fake-model",
        openai_api_key="test-key",
        plan_enabled=False,
        fallback_models=["gpt-4o-mini"],
        **extra,
    )


def _models(server: FakeOpenAIServer) -> list[str]:
    return [r["model"] for r in server.requests]


async def test_an_unavailable_model_falls_back_to_the_next_one_then_its_breaker_skips_it(tmp_path, server):
    server.enqueue(
        Fault.http(500, retry_after=0.01),
        Fault.http(500, retry_after=0.01),
        Reply(content="from the fallback model", usage=(50, 5)),
    )
    async with Keel.open(_openai(tmp_path, server, breaker_failure_threshold=1)) as keel:
        out = await keel.run("hi", user_id="alice")
        assert (out.status, out.terminated_reason, out.answer) == (
            "succeeded",
            None,
            "from the fallback model",
        )
        assert out.path == ["recall", "decide", "fallback", "decide", "finalize"]
        assert _models(server) == ["fake-model", "fake-model", "gpt-4o-mini"]
        [entry, *_] = await keel.backends.ledger.history("alice")
        assert (entry.name, entry.status) == ("gpt-4o-mini", "settled")
        server.reset()
        server.enqueue(Reply(content="again from the fallback"))
        second = await keel.run("hi again", user_id="alice")
        assert second.answer == "again from the fallback"
        assert _models(server) == ["gpt-4o-mini"], "the open breaker keeps the primary from being called"
        assert second.path == ["recall", "fallback", "decide", "finalize"]


async def test_when_every_model_fails_the_run_ends_with_a_canned_answer(tmp_path, server):
    server.enqueue(*[Fault.http(500, retry_after=0.01)] * 4)
    async with Keel.open(_openai(tmp_path, server)) as keel:
        out = await keel.run("hi", user_id="alice")
    assert (out.status, out.terminated_reason) == ("terminated", "llm_unavailable")
    assert out.path[-2:] == ["fallback", "finalize"] and "resume with thread" in out.answer
    assert _models(server) == ["fake-model", "fake-model", "gpt-4o-mini", "gpt-4o-mini"]


async def test_a_rate_limited_tool_is_not_run_and_the_model_is_told_when_to_retry(make_keel, tmp_path):
    limits = tmp_path / "limits.yaml"
    limits.write_text("version: 1\ntools:\n  read_file: {per_user: 1/minute}\n")
    turns = [
        tool_call("read_file", "r1", path="shared/handbook.md"),
        tool_call("read_file", "r2", path="shared/handbook.md"),
        "done",
    ]
    user = f"u{uuid.uuid4().hex[:8]}"
    async with make_keel(turns, limits_file=limits) as keel:
        out = await keel.run("read it twice", user_id=user)
        second = keel.fake_model.calls[-1]["messages"][-1]
        assert out.status == "succeeded"
        assert second.tool_call_id == "r2" and "read_file is rate-limited for you" in second.content
        assert "retry in" in second.content and "Nothing was executed" in second.content
        row = await keel.records.get_tool_result(out.thread_id, "r2")
        assert row.status == "refused"  # stopped before it ran: not the tool's failure
        [record] = await keel.records.list_executions(user_id=user)
        assert (record.tools_used, record.tools_failed, record.tools_refused) == (
            ("read_file",),
            (),
            ("read_file",),
        )
        audit = await keel.records.audit_for(thread_id=out.thread_id)
        assert [a.result_digest is not None for a in audit if a.tool_call_id == "r2" and a.status] == [False]


class _NoArgs(BaseModel):
    pass


async def test_an_open_tool_breaker_tells_the_model_the_tool_is_unavailable(make_keel):
    runs = []

    async def broken(args, ctx) -> str:
        runs.append(1)
        raise ConnectionError("backend down")

    flaky = ToolSpec(
        name="read_flaky",
        description="fails",
        args_model=_NoArgs,
        run=broken,
        resource=lambda a, r, w: "shared:flaky",
    )
    turns = [tool_call("read_flaky", f"f{i}") for i in range(3)] + ["gave up"]
    registry = default_registry().with_tools(flaky)
    async with make_keel(turns, registry=registry, breaker_failure_threshold=2) as keel:
        out = await keel.run("read the flaky thing three times", user_id="alice")
    told = [c["messages"][-1].content for c in keel.fake_model.calls[2:]]
    assert len(runs) == 2, "the third call never reached the tool"
    assert "read_flaky failed: ConnectionError" in told[0]
    assert "the tool read_flaky is unavailable: its circuit breaker is open" in told[2]
    assert out.answer == "gave up"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_redis(port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs the redis-server binary")
async def test_redis_gone_mid_run_fails_closed_then_the_run_resumes(pg_url, tmp_path):
    from keel.testing.fake_model import FakeChatModel

    port = _free_port()
    proc = _start_redis(port)
    settings = Settings(
        profile="postgres", database_url=pg_url, home=tmp_path, redis_url=f"redis://127.0.0.1:{port}/0"
    )
    (tmp_path / "workspace" / "shared").mkdir(parents=True)
    (tmp_path / "workspace" / "shared" / "handbook.md").write_text("Deploy on Tuesdays.\n")
    model = FakeChatModel([tool_call("read_file", "h1", path="shared/handbook.md"), "Tuesdays."])
    user = f"u{uuid.uuid4().hex[:8]}"
    try:
        async with Keel.open(settings, model=model, model_name="fake-model") as keel:
            graph_calls_before = len(model.calls)
            proc.kill()
            proc.wait()
            out = await keel.run("what does the handbook say?", user_id=user)
            assert (out.status, out.terminated_reason) == ("terminated", "guard_unavailable")
            assert f"Redis at 127.0.0.1:{port}/0 is unavailable" in out.answer
            assert f"resume with thread {out.thread_id}" in out.answer
            assert len(model.calls) == graph_calls_before, "no model call went out unchecked"
            status = await keel.backends.ledger.status(user)
            assert (status.spent, status.reserved) == (0, 0)
            proc = _start_redis(port)
            resumed = await keel.resume(out.thread_id)
            assert (resumed.status, resumed.answer) == ("succeeded", "Tuesdays.")
            assert (await keel.backends.ledger.status(user)).spent > 0
    finally:
        proc.kill()
        proc.wait()
        await asyncio.sleep(0)
