"""The keel agent graph: wiring only. Nodes live in nodes/, guards and routing in graphs/edges.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from keel.backends import Backends
from keel.context import RunContext
from keel.graphs.edges import Routes
from keel.graphs.state import AgentState, InputState
from keel.nodes.approval import make_approval
from keel.nodes.decide import make_decide
from keel.nodes.fallback import make_fallback
from keel.nodes.finalize import make_finalize
from keel.nodes.permission import make_permission_check
from keel.nodes.plan import make_plan
from keel.nodes.recall import make_recall
from keel.nodes.tool import make_tool
from keel.observability.instrument import instrument_node

__all__ = ["build_graph", "make_graph", "always_sync", "SyncDurableGraph"]


def build_graph(b: Backends, *, checkpointer: BaseCheckpointSaver | None = None) -> CompiledStateGraph:
    """The guarded agent graph over the given backends."""
    routes = Routes(b.guards)
    g = StateGraph(AgentState, context_schema=RunContext, input_schema=InputState)
    g.add_node("recall", instrument_node(b, "recall", make_recall(b)))
    g.add_node("plan", instrument_node(b, "plan", make_plan(b)))
    g.add_node("decide", instrument_node(b, "decide", make_decide(b)))
    g.add_node("permission_check", instrument_node(b, "permission_check", make_permission_check(b)))
    g.add_node("approval", instrument_node(b, "approval", make_approval(b)))
    g.add_node("tool", instrument_node(b, "tool", make_tool(b)))
    g.add_node("fallback", instrument_node(b, "fallback", make_fallback(b)))
    g.add_node("finalize", instrument_node(b, "finalize", make_finalize(b)))
    g.add_edge(START, "recall")
    g.add_edge("recall", "plan")
    g.add_conditional_edges("plan", routes.after_plan)
    g.add_conditional_edges("decide", routes.after_decide)
    g.add_conditional_edges("permission_check", routes.after_permission)
    g.add_conditional_edges("approval", routes.after_approval)
    g.add_conditional_edges("tool", routes.after_tool)
    g.add_conditional_edges("fallback", routes.after_fallback)
    g.add_edge("finalize", END)
    return g.compile(checkpointer=checkpointer, name="keel")


class SyncDurableGraph(CompiledStateGraph):
    """The agent graph as the server runs it: every run with durability "sync", whatever the request says.

    LangGraph Server passes `durability` per run (default "async": a step's checkpoint may still be in
    flight when the next step runs its tool). keel's exactly-once resume after a kill -9 needs the
    checkpoint written first, so the client's choice is overridden here, the one call every server
    path goes through (`invoke`, `stream` and `astream_events` all end in `stream`/`astream`).
    """

    def stream(self, input: Any, config: Any = None, **kwargs: Any) -> Iterator[Any]:
        return super().stream(input, config, **_sync(kwargs))

    async def astream(self, input: Any, config: Any = None, **kwargs: Any) -> AsyncIterator[Any]:
        async for chunk in super().astream(input, config, **_sync(kwargs)):
            yield chunk


def _sync(kwargs: dict[str, Any]) -> dict[str, Any]:
    kwargs.pop("checkpoint_during", None)  # deprecated spelling of durability; both at once is an error
    return {**kwargs, "durability": "sync"}


def always_sync(graph: CompiledStateGraph) -> SyncDurableGraph:
    """The same compiled graph as a SyncDurableGraph (Pregel.copy keeps the class in the server's copies)."""
    attrs = {k: v for k, v in graph.__dict__.items() if k != "__orig_class__"}
    return SyncDurableGraph(**attrs)


async def make_graph() -> CompiledStateGraph:
    """Entry point for `langgraph.json`: the server supplies the checkpointer and calls this per request,
    so the backends (records engine, policy, model) are built once per process and shared.

    Async so that a run the queue picks up before the server's start-up has finished waits for the
    backends to be built and migrated (in a worker thread) instead of doing blocking I/O on the loop."""
    from keel.server.backends import start

    return always_sync(build_graph(await start()))
