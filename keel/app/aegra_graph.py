"""The graph as Aegra runs it (`aegra.json` → "graphs"): keel's server graph, with the run's user taken from
Aegra's authenticated request, never from the run's config.

Aegra 0.6.0 puts the authenticated user in `config["configurable"]["langgraph_auth_user"]` only when the
config does not already have one (`setdefault`): a client's config, or an assistant's stored config, could
name any user there. Aegra also keeps the authenticated user in a context variable for the run
(`aegra_api.core.auth_ctx`), which no request body can set; `AegraGraph` overwrites the config's user with
it on every run. Aegra calls the factory once per process, with no arguments, and copies the graph per run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from keel.app.server_graph import SyncDurableGraph, always_sync
from keel.app.server_graph import make_graph as make_server_graph
from keel.context import InvalidContext

__all__ = ["AegraGraph", "make_graph"]


class AegraGraph(SyncDurableGraph):
    """keel's server graph whose runs act as Aegra's authenticated user (durability "sync" as ever)."""

    async def astream(self, input: Any, config: Any = None, **kwargs: Any) -> AsyncIterator[Any]:
        async for chunk in super().astream(input, authenticated(config), **kwargs):
            yield chunk


def authenticated(config: Any) -> dict[str, Any]:
    """`config` with `langgraph_auth_user` replaced by the user Aegra authenticated for this run."""
    from aegra_api.core.auth_ctx import get_auth_ctx

    ctx = get_auth_ctx()
    if ctx is None or ctx.user is None:
        raise InvalidContext("no authenticated user for this run (Aegra set no auth context)")
    user = ctx.user.to_dict() if hasattr(ctx.user, "to_dict") else dict(ctx.user)
    config = dict(config or {})
    config["configurable"] = {**(config.get("configurable") or {}), "langgraph_auth_user": user}
    return config


async def make_graph() -> AegraGraph:
    """Entry point for `aegra.json` (awaited once per process by Aegra, with no arguments)."""
    graph = await make_server_graph()
    # With a rollout, the runs still go to their version's graph (SyncDurableGraph.arms).
    return always_sync(graph, graph.arms, base=AegraGraph)  # type: ignore[return-value]
