"""The graph as LangGraph Server runs it: `make_graph` (named in `langgraph.json`) over the process's
backends, every run with durability "sync"."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from langgraph.graph.state import CompiledStateGraph
from langgraph_sdk.runtime import ServerRuntime

from keel.app.backends import Backends
from keel.app.server_backends import start
from keel.graphs.agent import build_graph

__all__ = ["make_graph", "always_sync", "arm_for", "SyncDurableGraph"]


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


async def make_graph(runtime: ServerRuntime | None = None) -> CompiledStateGraph:
    """Entry point for `langgraph.json`: the server supplies the checkpointer and calls this per request,
    so the backends (records engine, policy, model) are built once per process and shared.

    With a rollout, a run's graph is its version's: the one keel's auth handler put in the run's context
    (the user's arm for a new execution, the execution's own for a resume); other calls (schemas, state
    reads) get the process's own graph (every arm's graph has the same nodes and state).

    Async so that a run the queue picks up before the server's start-up has finished waits for the
    backends to be built and migrated (in a worker thread) instead of doing blocking I/O on the loop."""
    b = await start()
    return always_sync(build_graph(arm_for(b, runtime)))


def arm_for(b: Backends, runtime: Any) -> Backends:
    """The backends of the version a run's context names (`b` itself without a rollout, outside a run, or
    for a version no arm runs)."""
    ert = getattr(runtime, "execution_runtime", None) if runtime is not None else None
    context = getattr(ert, "context", None)
    version = context.get("version") if isinstance(context, dict) else getattr(context, "version", None)
    if not version or not b.arms:
        return b
    return next((arm for arm in b.arms.values() if arm.version.id == version), b)
