"""The graph as LangGraph Server (and Aegra) runs it: `make_graph` (named in `langgraph.json`) over the
process's backends, every run with durability "sync", and with a rollout every run on its version's graph."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, ClassVar

from langgraph.graph.state import CompiledStateGraph

from keel.app.backends import Backends
from keel.app.server_backends import start
from keel.graphs.agent import build_graph

__all__ = ["make_graph", "always_sync", "server_graph", "SyncDurableGraph"]


class SyncDurableGraph(CompiledStateGraph):
    """The agent graph as the server runs it: every run with durability "sync", whatever the request says,
    and, with a rollout, on the graph of the version the run's context names.

    LangGraph Server passes `durability` per run (default "async": a step's checkpoint may still be in
    flight when the next step runs its tool). keel's exactly-once resume after a kill -9 needs the
    checkpoint written first, so the client's choice is overridden here, the one call every server
    path goes through (`invoke`, `stream` and `astream_events` all end in `stream`/`astream`).

    The run's `context` carries its agent version, set by keel's auth handler (the user's rollout arm for a
    new execution, the execution's own for a resume; never the client's). `arms` maps a version to its
    graph: the run goes to that graph, with this graph's checkpointer and store. Routing here, not in the
    factory, holds on every server: LangGraph Server calls the factory per request, Aegra once per process.
    Every arm's graph has the same nodes and state, so state reads on this graph see any arm's threads.
    """

    arms: ClassVar[Mapping[str, CompiledStateGraph]] = {}
    """Version id -> that version's graph (a class attribute: `Pregel.copy` keeps the class, not extra
    instance attributes). Empty without a rollout."""

    def _routed(self, kwargs: dict[str, Any]) -> CompiledStateGraph | None:
        context = kwargs.get("context")
        version = context.get("version") if isinstance(context, dict) else getattr(context, "version", None)
        arm = self.arms.get(version) if isinstance(version, str) else None
        if arm is None:
            return None
        return arm.copy(update={"checkpointer": self.checkpointer, "store": self.store})

    def stream(self, input: Any, config: Any = None, **kwargs: Any) -> Iterator[Any]:
        kwargs = _sync(kwargs)
        if (arm := self._routed(kwargs)) is not None:
            return arm.stream(input, config, **kwargs)
        return super().stream(input, config, **kwargs)

    async def astream(self, input: Any, config: Any = None, **kwargs: Any) -> AsyncIterator[Any]:
        kwargs = _sync(kwargs)
        target = self._routed(kwargs)
        if target is not None:
            chunks = target.astream(input, config, **kwargs)
        else:
            chunks = super().astream(input, config, **kwargs)
        async for chunk in chunks:
            yield chunk


def _sync(kwargs: dict[str, Any]) -> dict[str, Any]:
    kwargs.pop("checkpoint_during", None)  # deprecated spelling of durability; both at once is an error
    return {**kwargs, "durability": "sync"}


def always_sync(
    graph: CompiledStateGraph,
    arms: Mapping[str, CompiledStateGraph] | None = None,
    *,
    base: type[SyncDurableGraph] = SyncDurableGraph,
) -> SyncDurableGraph:
    """The same compiled graph as a `base` (a SyncDurableGraph; Pregel.copy keeps the class in the server's
    copies); `arms`: the graphs runs of other versions go to (a subclass of `base` carries them)."""
    cls = base
    if arms:
        cls = type(f"{base.__name__}WithArms", (base,), {"arms": dict(arms)})
    attrs = {k: v for k, v in graph.__dict__.items() if k != "__orig_class__"}
    return cls(**attrs)


_built: dict[int, tuple[Backends, SyncDurableGraph]] = {}


def server_graph(b: Backends) -> SyncDurableGraph:
    """`b`'s graph as the server runs it, with every rollout arm's graph to route runs to; compiled once per
    backends (the server copies it per request with its checkpointer and store)."""
    built = _built.get(id(b))
    if built is None or built[0] is not b:
        arms = {arm.version.id: always_sync(build_graph(arm)) for arm in b.arms.values() if arm is not b}
        built = _built[id(b)] = (b, always_sync(build_graph(b), arms))
    return built[1]


async def make_graph() -> CompiledStateGraph:
    """Entry point for `langgraph.json`: the server supplies the checkpointer and calls this per request
    (Aegra: once), so the backends (records engine, policy, model) are built once per process and shared.

    Async so that a run the queue picks up before the server's start-up has finished waits for the
    backends to be built and migrated (in a worker thread) instead of doing blocking I/O on the loop."""
    return server_graph(await start())
