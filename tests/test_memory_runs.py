"""Memory in real runs: finalize queues a memory of the run, the memory writer stores it, recall brings it
back to the same user only; working memory in Redis is a cache: Redis going down loses nothing, it rebuilds.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from keel.app.service import Keel
from keel.memory.types import MemoryScope
from keel.memory.working import RedisWorkingMemory
from keel.settings import Settings
from keel.testing.fake_model import FakeChatModel, tool_call


def system_of(call: dict) -> str:
    return call["messages"][0].content


async def test_a_run_is_remembered_and_recalled_for_its_user_only(make_keel) -> None:
    turns = [
        tool_call("read_file", path="shared/handbook.md"),
        "Deploys happen on Tuesdays.",
        "Hi Bob.",
        "Yes.",
    ]
    async with make_keel(turns) as keel:
        first = await keel.run("when do we deploy according to the handbook?", user_id="alice")
        assert first.status == "succeeded"
        await written(keel)  # the memory writer's task stores it off the request path
        ltm = keel.backends.memory.long_term
        [mem] = await ltm.list(MemoryScope(user_id="alice"))
        assert mem.kind == "run" and "Asked: when do we deploy" in mem.text
        assert "Done: read_file" in mem.text and "Outcome: succeeded: Deploys happen on Tuesdays." in mem.text
        assert mem.metadata["execution_id"] == first.execution_id

        await keel.run("hello", user_id="bob")
        bob_prompt = system_of(keel.fake_model.calls[-1])
        assert "memory: Asked: when do we deploy" not in bob_prompt

        second = await keel.run("remind me: which day do we deploy?", user_id="alice")
        assert second.status == "succeeded"
        alice_prompt = system_of(keel.fake_model.calls[-1])
        assert "memory: Asked: when do we deploy according to the handbook?" in alice_prompt
        assert "earlier task" in alice_prompt  # recent executions are still recalled too
        state = await keel.graph.aget_state({"configurable": {"thread_id": second.thread_id}})
        assert any(r.startswith("memory: Asked: when do we deploy") for r in state.values["recalled"])
        await written(keel)
        assert await ltm.count(MemoryScope(user_id="alice")) == 2


async def written(keel: Keel) -> None:
    """Wait (10 s at most) until the memory writer has emptied the queue."""
    deadline = time.monotonic() + 10
    while await keel.records.queued_memory_count():
        assert time.monotonic() < deadline, "the memory writer did not write the queued run memories"
        await asyncio.sleep(0.02)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OwnRedis:
    """A private redis-server on a free port, so taking it down never touches the shared one."""

    def __init__(self, port: int) -> None:
        self.port, self.proc = port, None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                if redis.Redis(port=self.port, socket_timeout=0.5).ping():
                    return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    server = OwnRedis(_free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.postgres
@pytest.mark.redis
async def test_redis_down_runs_go_on_and_working_memory_rebuilds(
    pg_url: str, tmp_path: Path, own_redis: OwnRedis
) -> None:
    settings = Settings(
        profile="postgres",
        database_url=pg_url,
        home=tmp_path,
        working_memory_url=f"redis://127.0.0.1:{own_redis.port}/0",
        redis_prefix=f"keel-test-{uuid.uuid4().hex[:8]}:",
        context_budget_tokens=5000 + 1024,  # 5000 input tokens a call (max_output_tokens is 1024)
        memory_enabled=False,  # working memory only: long-term memory would embed the long notes
    )
    # Working memory is touched only when a call overflows its context: one note fits with the system
    # prompt and the tools, two do not (the older one is trimmed and its digest line stands for it).
    filler = " lorem" * int(0.6 * 5000 / 1.5)  # ~1.5 tokens a word: 60 % of the budget
    model = FakeChatModel(["first answer", "second answer", "third answer"])
    async with Keel.open(settings, model=model, model_name="fake-model") as keel:
        working = keel.backends.memory.working
        assert isinstance(working, RedisWorkingMemory)
        first = await keel.run("note one" + filler, user_id="alice")
        thread = first.thread_id
        assert await working.get(thread) is None, "the thread fits: working memory untouched"

        own_redis.stop()  # working memory's Redis goes away mid-thread
        second = await keel.run("note two" + filler, user_id="alice", thread_id=thread)
        assert (second.status, second.answer) == ("succeeded", "second answer")
        assert working.last_error is not None, "the overflowing call asked working memory"
        assert "user: note one" in str(model.calls[-1]["messages"])  # the digest, from the checkpoint

        own_redis.start()  # back, empty: the next model call rebuilds it from the checkpointed messages
        third = await keel.run("note three" + filler, user_id="alice", thread_id=thread)
        assert third.status == "succeeded" and working.last_error is None
        rebuilt = await working.get(thread)
        state = await keel.graph.aget_state({"configurable": {"thread_id": thread}})
        assert (
            rebuilt is not None and rebuilt.covered == len(state.values["messages"]) - 1
        )  # all but the answer
        assert rebuilt.lines[0].startswith("user: note one lorem") and rebuilt.lines[1:2] == (
            "assistant: first answer",
        )
        assert rebuilt.lines[2].startswith("user: note two lorem") and rebuilt.lines[3:4] == (
            "assistant: second answer",
        )
