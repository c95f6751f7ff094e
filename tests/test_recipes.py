"""The recipes of docs/architecture.md, each followed once: add a tool, add a node, add a storage backend.

(The "add a guard" recipe and its test come with the Guard protocol.) Each test does what its recipe says,
through the seams the recipe names, and checks the outcome the recipe promises.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import test_memory_context as working_contract  # the shared suite, imported as a module: not collected twice
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from pydantic import BaseModel, ConfigDict, Field

from keel.app.backends import Backends, open_checkpointer
from keel.app.service import Keel
from keel.context import RunContext
from keel.graphs.agent import agent_nodes, build_graph
from keel.graphs.edges import Routes
from keel.graphs.state import AgentState, InputState
from keel.memory.context import ContextFitter
from keel.memory.stores import MemoryBackends
from keel.memory.working import ThreadDigest, WorkingMemory
from keel.observability.instrument import instrument_node
from keel.settings import Settings
from keel.testing.fake_model import FakeChatModel, tool_call
from keel.tools.registry import default_registry
from keel.tools.spec import ToolContext, ToolInputError, ToolSpec

# --- Add a tool ---------------------------------------------------------------------------------------


class CountWordsArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="File path relative to the workspace root; `~/x` is your own home.")


async def _count_words(args: CountWordsArgs, ctx: ToolContext) -> str:
    target = ctx.workspace.resolve(args.path, ctx.run.user_id)
    if not target.absolute.is_file():
        raise ToolInputError(f"no file at {target.relative}")
    text = await asyncio.to_thread(target.absolute.read_text, encoding="utf-8")
    return f"{len(text.split())} words in {target.relative}"


COUNT_WORDS = ToolSpec(
    name="count_words",
    description="Count the words of a text file in the workspace.",
    args_model=CountWordsArgs,
    run=_count_words,
    resource=lambda args, run, ws: ws.resolve(args.path, run.user_id).resource,
)


def _policy_with_rule(tmp_path: Path, settings: Settings) -> Path:
    """Step 3: the shipped policy plus one rule for the new tool (appended to its `rules:` list)."""
    rule = '  - {role: user, tool: count_words, resource: "shared:*", effect: allow}\n'
    path = tmp_path / "policy.yaml"
    path.write_text(settings.policy_file.read_text(encoding="utf-8") + rule, encoding="utf-8")
    return path


async def _audit(keel: Keel, thread_id: str) -> list[tuple]:
    return [
        (r.event, r.tool, r.decision, r.status) for r in await keel.records.audit_for(thread_id=thread_id)
    ]


async def test_add_a_tool(make_keel, settings: Settings, tmp_path: Path) -> None:
    registry = default_registry().with_tools(COUNT_WORDS)  # step 2: the public seam
    policy = _policy_with_rule(tmp_path, settings)
    turns = [tool_call("count_words", path="shared/handbook.md"), "The handbook has 6 words."]

    async with make_keel(turns, registry=registry, policy_file=policy) as keel:
        out = await keel.run("how long is the handbook?", user_id="alice", role="user")
        assert out.status == "succeeded" and "tool" in out.path
        told = keel.fake_model.calls[-1]["messages"][-1]
        assert told.content == "6 words in shared/handbook.md"
        assert "count_words" in keel.fake_model.calls[1]["tools"], "decide offered the model the new tool"
        assert await _audit(keel, out.thread_id) == [
            ("permission", "count_words", "allow", None),
            ("tool_call", "count_words", None, "ok"),
        ]

    # A role the policy gives no rule for is denied (no match denies), audited, and the tool never runs.
    async with make_keel(list(turns), registry=registry, policy_file=policy) as keel:
        out = await keel.run("how long is the handbook?", user_id="vera", role="viewer")
        assert await _audit(keel, out.thread_id) == [("permission", "count_words", "deny", "denied")]
        assert "denied by policy" in keel.fake_model.calls[-1]["messages"][-1].content

    # Without step 3 the tool is registered but denied to everyone but admins.
    async with make_keel(list(turns), registry=registry) as keel:
        out = await keel.run("how long is the handbook?", user_id="alice", role="user")
        assert await _audit(keel, out.thread_id) == [("permission", "count_words", "deny", "denied")]


# --- Add a node ---------------------------------------------------------------------------------------


class CountedState(AgentState, total=False):
    answer_words: int
    """Words in the final answer (written by the `count_answer` node)."""


def make_count_answer():  # noqa: ANN201 - a node factory, as in nodes/
    """Step 1: the node's factory, taking the collaborators the node uses (here none: records, policy,
    memory... would come in as keyword arguments); the node returns only the key it changes."""

    async def count_answer(
        state: CountedState, config: RunnableConfig, runtime: Runtime[RunContext]
    ) -> dict[str, Any]:
        return {"answer_words": len((state.get("answer") or "").split())}

    return count_answer


def _build_graph_with_count(b: Backends, checkpointer: Any) -> Any:
    """Steps 2-3: graphs/agent.py's wiring: the node built with its collaborators (in `agent_nodes`) and
    instrumented, then placed between finalize and END."""
    routes = Routes(b.guards)
    g = StateGraph(CountedState, context_schema=RunContext, input_schema=InputState)
    nodes = agent_nodes(b)
    nodes["count_answer"] = instrument_node(b.telemetry, "count_answer", make_count_answer())
    for name, node in nodes.items():
        g.add_node(name, node)
    g.add_edge(START, "recall")
    g.add_edge("recall", "plan")
    g.add_conditional_edges("plan", routes.after_plan)
    g.add_conditional_edges("decide", routes.after_decide)
    g.add_conditional_edges("permission_check", routes.after_permission)
    g.add_conditional_edges("approval", routes.after_approval)
    g.add_conditional_edges("tool", routes.after_tool)
    g.add_conditional_edges("fallback", routes.after_fallback)
    g.add_edge("finalize", "count_answer")
    g.add_edge("count_answer", END)
    return g.compile(checkpointer=checkpointer, name="keel")


@asynccontextmanager
async def _keel_over(b: Backends, build: Any = build_graph) -> AsyncIterator[Keel]:
    """What Keel.open does, over backends the test built (and maybe changed) itself."""
    try:
        await b.ready()
        async with open_checkpointer(b.settings) as saver:
            yield Keel(b, build(b, checkpointer=saver))
    finally:
        await b.aclose()


async def test_add_a_node(settings: Settings, workspace: Path) -> None:
    model = FakeChatModel([tool_call("read_file", path="shared/handbook.md"), "Deploys happen on Tuesdays."])
    b = Backends.from_settings(settings, model=model, model_name="fake-model")
    async with _keel_over(b, _build_graph_with_count) as keel:
        out = await keel.run("when do we deploy?", user_id="alice")
        assert out.status == "succeeded"
        assert out.path[-2:] == ["finalize", "count_answer"], out.path
        state = await keel.graph.aget_state({"configurable": {"thread_id": out.thread_id}})
        assert state.values["answer_words"] == 4
        ex = await keel.records.get_execution(out.execution_id)
        assert ex.status == "succeeded", "the rest of the graph is unchanged"


# --- Add a storage backend ----------------------------------------------------------------------------


class SqliteWorkingMemory:
    """Step 1: a third `WorkingMemory` (memory/working.py): one SQLite file, expiry refreshed on use.

    sqlite3 blocks, so each call runs in a worker thread; one connection, serialised by a lock."""

    def __init__(self, path: Path, *, ttl_s: float = 3600.0) -> None:
        self.ttl_s = ttl_s
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS wm (thread_id TEXT PRIMARY KEY, expires REAL, body TEXT)"
        )
        self._lock = asyncio.Lock()

    async def _run(self, sql: str, *params: object) -> list[tuple]:
        async with self._lock:
            return await asyncio.to_thread(lambda: self._db.execute(sql, params).fetchall())

    async def get(self, thread_id: str) -> ThreadDigest | None:
        now = time.time()
        rows = await self._run("SELECT body FROM wm WHERE thread_id = ? AND expires > ?", thread_id, now)
        if not rows:
            return None
        await self._run("UPDATE wm SET expires = ? WHERE thread_id = ?", now + self.ttl_s, thread_id)
        return ThreadDigest.from_json(rows[0][0])

    async def put(self, thread_id: str, digest: ThreadDigest) -> bool:
        await self._run(
            "INSERT OR REPLACE INTO wm VALUES (?, ?, ?)",
            thread_id,
            time.time() + self.ttl_s,
            digest.to_json(),
        )
        return True

    async def drop(self, thread_id: str) -> None:
        await self._run("DELETE FROM wm WHERE thread_id = ?", thread_id)

    async def aclose(self) -> None:
        self._db.close()


async def test_add_a_storage_backend(settings: Settings, workspace: Path, tmp_path: Path) -> None:
    # Step 2: the shared contract suite the in-process and Redis stores pass.
    store = SqliteWorkingMemory(tmp_path / "wm-contract.sqlite", ttl_s=60)
    assert isinstance(store, WorkingMemory)
    await working_contract.test_working_memory_conformance(store)
    await store.aclose()

    # Step 3: built where the memory backends are built, and used by a real run. Working memory is used
    # only when a call overflows its context (5000 tokens here): one long request fits, two do not.
    settings = settings.model_copy(update={"context_budget_tokens": 5000 + settings.max_output_tokens})
    filler = " lorem" * int(0.6 * 5000 / 1.5)  # ~1.5 tokens a word: 60 % of the budget
    store = SqliteWorkingMemory(tmp_path / "wm.sqlite", ttl_s=60)
    model = FakeChatModel(["Hello, Alice.", "Hello again."])
    b = Backends.from_settings(settings, model=model, model_name="fake-model")
    assert b.memory is not None
    await b.memory.working.aclose()
    b.memory = MemoryBackends(  # no long-term memory: recall would embed the long requests
        long_term=None, working=store, context=ContextFitter(settings, store)
    )
    async with _keel_over(b) as keel:
        out = await keel.run("say hello" + filler, user_id="alice")
        assert out.status == "succeeded" and await store.get(out.thread_id) is None
        again = await keel.run("say it again" + filler, user_id="alice", thread_id=out.thread_id)
        assert again.status == "succeeded"
        cached = await store.get(out.thread_id)
        assert cached is not None and cached.covered >= 1 and cached.lines[0].startswith("user: say hello")
