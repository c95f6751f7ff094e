"""The keel agent graph: wiring only. Nodes live in nodes/, guards and routing in graphs/edges.py."""

from __future__ import annotations

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from keel.app.backends import Backends
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

__all__ = ["build_graph", "NODES"]

NODES = ("recall", "plan", "decide", "permission_check", "approval", "tool", "fallback", "finalize")


def build_graph(b: Backends, *, checkpointer: BaseCheckpointSaver | None = None) -> CompiledStateGraph:
    """The guarded agent graph over the given backends."""
    routes = Routes(b.limits, b.guards)
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
