"""keel inside your own LangGraph app: `create_guarded_agent`, in the spirit of LangChain's `create_agent`.

`create_guarded_agent(model, tools)` returns keel's full guarded graph (recall, guards, permission check,
approval, exactly-once tool execution, audit, execution record) over the caller's own chat model and
tools, as a compiled LangGraph graph: run it directly or add it as a node of your own `StateGraph` (it
reads and appends `messages`).

Every tool declares what its call does to the world (its effect decides what keel does after a crash), so
a LangChain tool is wrapped with `guarded_tool(tool, effect=...)`; a tool without a declaration is refused
with a TypeError naming the fix, never guessed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.store.base import BaseStore

from keel.app.backends import Backends
from keel.app.guarded_agent import ANONYMOUS, GuardedAgent
from keel.context import RunContext
from keel.graphs.agent import build_graph
from keel.guards import Guard, NextCall
from keel.policies.matrix import PolicyMatrix
from keel.policies.watcher import PolicyWatcher
from keel.settings import Settings
from keel.tool_effect import ToolEffect
from keel.tools.imported import spec_from_tool
from keel.tools.registry import ToolRegistry
from keel.tools.spec import ToolSpec

__all__ = ["create_guarded_agent", "guarded_tool", "model_name_of"]


def guarded_tool(
    tool: Any,
    *,
    effect: ToolEffect,
    resource: str | None = None,
    timeout_s: float | None = None,
) -> ToolSpec:
    """A LangChain tool (`@tool`, StructuredTool, BaseTool) or a typed function with a docstring, declared
    for keel: `effect` (read | idempotent | external | transactional: what each needs is in
    keel/tools/imported.py) and the `resource` template the permission matrix is asked about
    (`"order:{order_id}"`, from the validated args; the tool's name when None).
    A bad declaration is refused here (ValueError), not at the first call."""
    return spec_from_tool(tool, effect=effect, resource=resource, timeout_s=timeout_s)


def model_name_of(model: BaseChatModel) -> str:
    """The name a chat model is priced under: its `model_name` or `model` field, else its LLM type."""
    for attr in ("model_name", "model"):
        if isinstance(name := getattr(model, attr, None), str) and name:
            return name
    return model._llm_type


def _registry(tools: Sequence[Any]) -> ToolRegistry:
    specs = []
    for tool in tools:
        if not isinstance(tool, ToolSpec):
            name = getattr(tool, "name", None) or getattr(tool, "__name__", None) or repr(tool)
            raise TypeError(
                f"tool {name!r} declares no effect; keel refuses to guess what it does: pass "
                f"keel.guarded_tool({name}, effect='read', resource='...') instead "
                "(effects: read, idempotent, external, transactional)"
            )
        specs.append(tool)
    return ToolRegistry(specs)


def create_guarded_agent(
    model: BaseChatModel,
    tools: Sequence[ToolSpec],
    *,
    policy: str | Path | PolicyMatrix | None = None,
    prices: str | Path | None = None,
    checkpointer: BaseCheckpointSaver | None = None,
    store: BaseStore | None = None,
    settings: Settings | None = None,
    model_name: str | None = None,
    identity: RunContext | None = ANONYMOUS,
    guards: Sequence[Guard[NextCall]] = (),
) -> GuardedAgent:
    """keel's guarded agent graph over your model and tools, compiled.

    - `model`: any LangChain chat model; it is the one called. It must have a price (`prices`, or the
      settings' price file) under `model_name` (default: `model_name_of(model)`): keel refuses to count
      a model as free.
    - `tools`: each declared with `guarded_tool` (or one of keel's built-in ToolSpecs).
    - `policy`: the permission matrix, a file or a `PolicyMatrix`; default: the settings' (keel's shipped
      policy unless `KEEL_POLICY_FILE` says otherwise). `prices`: a price file.
    - `checkpointer`: None inherits the parent graph's as a subgraph; run on its own, keel needs a
      durable one (AsyncSqliteSaver, AsyncPostgresSaver) for approvals and exactly-once resume: without
      one it warns (`NoCheckpointerWarning`) and runs.
    - `store`: a LangGraph store given to the graph (for your tools); keel's long-term memory is its own.
    - `settings`: storage profile, limits, budgets (default: `Settings()` from `KEEL_*`).
    - `identity`: who a run given no `context=` runs as (default: `anonymous`, role `viewer`); None
      requires a context on every run.
    - `guards`: your own guards, checked before every model call after keel's.

    The agent owns the backends it builds (the records database pool, hot-state clients): close them with
    `await agent.aclose()` or `async with create_guarded_agent(...) as agent:`. The checkpointer and the
    store stay yours. Building does no I/O; the first run migrates the records database.
    """
    settings = settings or Settings()
    update: dict[str, Any] = {}
    if isinstance(policy, str | Path):
        update["policy_file"] = Path(policy)
    if prices is not None:
        update["prices_file"] = Path(prices)
    if update:
        settings = settings.model_copy(update=update)
    matrix = policy if isinstance(policy, PolicyMatrix) else PolicyMatrix.load(settings.policy_file)
    if identity is not None and identity.role not in matrix.roles:
        known = ", ".join(sorted(matrix.roles))
        raise ValueError(
            f"identity role {identity.role!r} is not a role of the policy ({known}); "
            "pass identity=RunContext(user_id=..., role=...) or identity=None"
        )
    built = Backends.from_settings(
        settings,
        model=model,
        model_name=model_name or model_name_of(model),
        registry=_registry(tools),
        guards=guards,
    )
    if isinstance(policy, PolicyMatrix):
        built.policy = PolicyWatcher(policy)  # given as an object: no file to watch
    graph = build_graph(built, checkpointer=checkpointer, store=store)
    return GuardedAgent.wrap(graph, built, identity)
