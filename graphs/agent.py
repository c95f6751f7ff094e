"""The keel agent graph: wiring only. Nodes live in nodes/, guards and routing in graphs/edges.py.

Each node receives the few collaborators it uses, handed out here from the graph's dependencies.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore

from keel.chain import chain_providers
from keel.context import RunContext
from keel.graphs.deps import GraphDeps
from keel.graphs.edges import Routes
from keel.graphs.state import AgentState, InputState
from keel.nodes._shared import ModelCalls
from keel.nodes.approval import make_approval
from keel.nodes.decide import make_decide
from keel.nodes.fallback import make_fallback
from keel.nodes.finalize import make_finalize
from keel.nodes.permission import make_permission_check
from keel.nodes.plan import make_plan
from keel.nodes.recall import make_recall
from keel.nodes.tool import make_tool
from keel.observability.instrument import instrument_node

__all__ = ["build_graph", "agent_nodes"]


def agent_nodes(b: GraphDeps) -> dict[str, Callable[..., Awaitable[dict[str, Any]]]]:
    """The agent's nodes by name, each built with the few collaborators it uses, and instrumented."""
    settings, records, policy, memory, guards = b.settings, b.records, b.policy, b.memory, b.guards
    calls = ModelCalls(
        settings=settings,
        prices=b.prices,
        guards=guards,
        telemetry=b.telemetry,
        model_name=b.model_name,
        instructions=b.instructions,
        providers=chain_providers(settings),
        cache=b.caches.model,
    )
    nodes = {
        "recall": make_recall(
            records=records,
            policy=policy,
            memory=memory,
            settings=settings,
            model_name=b.model_name,
            ready=b.ready,
            instructions=b.instructions,
            arm=getattr(b, "arm", None),
        ),
        "plan": make_plan(calls=calls, model=b.model, memory=memory, enabled=settings.plan_enabled),
        "decide": make_decide(
            calls=calls,
            models=b.models,
            registry=b.registry,
            memory=memory,
            policy=policy,
            executor=b.executor,
        ),
        "permission_check": make_permission_check(
            records=records,
            policy=policy,
            executor=b.executor,
            guards=guards,
        ),
        "approval": make_approval(
            records=records, policy=policy, executor=b.executor, ttl_s=settings.approval_ttl_s
        ),
        "tool": make_tool(executor=b.executor, telemetry=b.telemetry),
        "fallback": make_fallback(guards=guards, settings=settings),
        "finalize": make_finalize(records=records, guards=guards, memory=memory, on_finished=_on_finished(b)),
    }
    arm = getattr(b, "arm", None)
    return {name: instrument_node(b.telemetry, name, node, arm=arm) for name, node in nodes.items()}


def _on_finished(b: GraphDeps) -> Callable[[], Awaitable[None]] | None:
    """What finalize awaits after a run on a rollout arm: the arm's guard rails (None: no rollout)."""
    rollout, arm = getattr(b, "rollout", None), getattr(b, "arm", None)
    if rollout is None or arm is None:
        return None

    async def finished() -> None:
        await rollout.finished(arm)

    return finished


def build_graph(
    b: GraphDeps, *, checkpointer: BaseCheckpointSaver | None = None, store: BaseStore | None = None
) -> CompiledStateGraph:
    """The guarded agent graph over the given backends (`store`: a LangGraph store for the tools)."""
    routes = Routes(b.guards, plan=b.settings.plan_enabled)
    g = StateGraph(AgentState, context_schema=RunContext, input_schema=InputState)
    for name, node in agent_nodes(b).items():
        g.add_node(name, node)
    g.add_edge(START, "recall")
    g.add_conditional_edges("recall", routes.after_recall)
    g.add_conditional_edges("plan", routes.after_plan)
    g.add_conditional_edges("decide", routes.after_decide)
    g.add_conditional_edges("permission_check", routes.after_permission)
    g.add_conditional_edges("approval", routes.after_approval)
    g.add_conditional_edges("tool", routes.after_tool)
    g.add_conditional_edges("fallback", routes.after_fallback)
    g.add_edge("finalize", END)
    return g.compile(checkpointer=checkpointer, store=store, name="keel")
