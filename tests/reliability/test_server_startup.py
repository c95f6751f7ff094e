"""The server survives its own restart (issue 11, item 8), and its runs checkpoint every step (item 1).

`langgraph dev` runs its queue under blockbuster: any blocking call on the event loop raises. A run the
queue picks up before keel's start-up has finished must wait for the backends, built and migrated off
the loop, instead of migrating on it (`BlockingError: Blocking call to os.mkdir` in Records.setup()).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from blockbuster import BlockBuster
from langchain_core.messages import HumanMessage

import keel.app.server_backends as server
from keel.app.backends import open_checkpointer
from keel.app.server_graph import always_sync, make_graph
from keel.context import RunContext
from keel.graphs.agent import build_graph
from keel.testing.fake_model import tool_call


@pytest.fixture
def fresh_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Server backends not yet built, over a home whose folders do not exist yet."""
    monkeypatch.setenv("KEEL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KEEL_PROFILE", "embedded")
    monkeypatch.setattr(server, "_built", [])
    yield
    if server._built:
        server._built[0].records.engine.sync_engine.dispose()


@pytest.fixture
def blockbuster():
    """What `langgraph dev` enables around its queue (langgraph_runtime_inmem.queue._enable_blockbuster)."""
    bb = BlockBuster(excluded_modules=[])
    bb.activate()
    try:
        yield bb
    finally:
        bb.deactivate()


async def test_a_run_before_start_up_finished_does_no_blocking_io(fresh_server):
    b = await asyncio.to_thread(server.server_backends)  # built, not migrated
    bb = BlockBuster(excluded_modules=[])
    bb.activate()
    try:
        await b.ready()  # what the recall node does first in every run
    finally:
        bb.deactivate()
    assert await b.records.latest_execution("no-such-thread") is None  # the schema is there


async def test_the_graph_factory_waits_for_the_backends(fresh_server, blockbuster):
    graph = await make_graph()  # the queue's first run, before the lifespan's start() ran
    assert server._built and server._built[0].is_ready
    assert graph.name == "keel"


async def test_server_graph_checkpoints_every_step_whatever_durability_is_asked(make_keel):
    turns = [tool_call("read_file", path="shared/handbook.md"), "Deploy on Tuesdays."]
    async with make_keel(turns) as keel:
        b = keel.backends
        async with open_checkpointer(b.settings) as saver:
            graph = always_sync(build_graph(b, checkpointer=saver))
            copied = graph.copy(update={"checkpointer": saver})  # what the server does per run
            ctx = RunContext(user_id="alice", role="user", tenant="default", execution_id="ex-d", version="t")
            config = {"configurable": {"thread_id": "t-durable"}}
            async for _ in copied.astream(
                {"messages": [HumanMessage("what does the handbook say")]},
                config,
                context=ctx,
                stream_mode="updates",
                durability="exit",  # a client asking for checkpoints only at the end
            ):
                pass
            steps = [s async for s in copied.aget_state_history(config)]
    # one checkpoint per step (input, recall, plan, decide, permission_check, tool, decide, finalize),
    # not the single final one "exit" would have written
    assert len(steps) >= 8, [s.metadata.get("step") for s in steps]
