"""The compiled graph `keel.create_guarded_agent` returns: keel's guarded agent graph, plus who runs it and
who owns its backends.

A `CompiledStateGraph` like any other (invoke it, stream it, add it as a node of your own graph); before
each run it settles three things the caller of a plain LangGraph graph would otherwise have to know:

- identity: the run's `RunContext` is the `context=` given; else, on LangGraph Server, the authenticated
  user (keel.identity); else the parent graph's (as a subgraph); else the agent's default identity
  (`anonymous`, role `viewer`); else the run is refused. Never admin by default.
- durability: every run is "sync" (a step's checkpoint is written before the next step runs), as on the
  server: keel's exactly-once resume after a crash depends on it.
- resume: a `Command(resume=...)` or `None` input carries on the execution the thread was in (its
  execution id from the checkpoint), so the approval and the execution record stay one execution.

It owns its `Backends` (records database, hot-state clients, memory): `await agent.aclose()` or
`async with agent:` releases them. Copies LangGraph makes (`with_config`, the server's copies) share them.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from langgraph._internal._constants import CONF, CONFIG_KEY_CHECKPOINTER, CONFIG_KEY_RUNTIME
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command

from keel.app.backends import Backends
from keel.context import InvalidContext, RunContext
from keel.identity import auth_principal

__all__ = ["GuardedAgent", "ANONYMOUS", "NoCheckpointerWarning"]

ANONYMOUS = RunContext(user_id="anonymous", role="viewer")
"""The default identity of a run given no context: the shipped policy's read-only role."""

# What a parent graph hands its subgraphs in the config (LangGraph's own keys: a rename fails the import,
# loudly, rather than this module silently seeing no parent).
_CONF = CONF
_PARENT_RUNTIME = CONFIG_KEY_RUNTIME
_PARENT_CHECKPOINTER = CONFIG_KEY_CHECKPOINTER


class NoCheckpointerWarning(UserWarning):
    """A guarded agent runs on its own without a checkpointer: nothing to resume from."""


class GuardedAgent(CompiledStateGraph):
    """keel's agent graph with its identity default, durability and backends attached (see module doc)."""

    def __init__(
        self,
        *,
        keel_backends: Backends,
        keel_identity: RunContext | None = ANONYMOUS,
        keel_warned: set[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.keel_backends = keel_backends
        """The backends this agent owns (closed by `aclose`)."""
        self.keel_identity = keel_identity
        """Who a run given no context runs as; None: a context is required."""
        self.keel_warned = keel_warned if keel_warned is not None else set()
        """Warnings already given (shared with copies, which LangGraph makes through `__init__`)."""

    @classmethod
    def wrap(cls, graph: CompiledStateGraph, backends: Backends, identity: RunContext | None) -> GuardedAgent:
        """The same compiled graph as a GuardedAgent."""
        attrs = {k: v for k, v in graph.__dict__.items() if k != "__orig_class__"}
        return cls(keel_backends=backends, keel_identity=identity, **attrs)

    async def astream(self, input: Any, config: Any = None, **kwargs: Any) -> AsyncIterator[Any]:
        kwargs.pop("checkpoint_during", None)  # deprecated spelling of durability
        conf = (config or {}).get(_CONF) or {}
        if self.checkpointer is not None or conf.get(_PARENT_CHECKPOINTER) is not None:
            kwargs["durability"] = "sync"  # (LangGraph refuses "sync" with no checkpointer at all)
        else:
            kwargs.pop("durability", None)
        kwargs["context"] = await self._context(input, config or {}, kwargs.get("context"))
        async for chunk in super().astream(input, config, **kwargs):
            yield chunk

    async def _context(self, input: Any, config: Any, given: Any) -> RunContext | None:
        conf = config.get(_CONF) or {}
        self._warn_without_checkpointer(conf)
        if given is None and (principal := auth_principal(config)) is not None:
            # On LangGraph Server: the authenticated user runs (a context the client gives is checked
            # against it by keel.identity in recall).
            given = RunContext(user_id=principal.user_id, role=principal.role, tenant=principal.tenant)
        parent = getattr(conf.get(_PARENT_RUNTIME), "context", None)
        if given is None and isinstance(parent, RunContext):
            return None  # a subgraph: the parent's run context flows in (LangGraph merges it)
        if given is None and isinstance(parent, dict):
            given = parent  # a parent without a context schema passes the dict on as it was given
        ctx = _as_context(given) if given is not None else self._default_identity()
        if not ctx.version:  # the caller named no version: this agent's own (from its config, never a client)
            ctx = replace(ctx, version=self.keel_backends.version.id)
        roles = self.keel_backends.policy.current().roles
        if ctx.role not in roles:
            raise InvalidContext(f"unknown role {ctx.role!r} (known: {', '.join(sorted(roles))})")
        if (input is None or isinstance(input, Command)) and self.checkpointer and conf.get("thread_id"):
            # Resuming (an approval decided, a crash): the execution the thread was in goes on.
            values = (await self.aget_state(config)).values
            if running := values.get("execution_id"):
                ctx = replace(ctx, execution_id=running)
        return ctx

    def _default_identity(self) -> RunContext:
        if self.keel_identity is None:
            raise InvalidContext(
                "no run context: pass context=RunContext(user_id=..., role=...) to the run "
                "(this agent was created with identity=None)"
            )
        return replace(self.keel_identity, execution_id=str(uuid.uuid4()))

    def _warn_without_checkpointer(self, conf: dict[str, Any]) -> None:
        if self.checkpointer is None and conf.get(_PARENT_CHECKPOINTER) is None:
            if "no_checkpointer" in self.keel_warned:
                return  # once per agent (and its copies), not once per run
            self.keel_warned.add("no_checkpointer")
            warnings.warn(
                "keel agent runs without a checkpointer: an approval cannot pause the run and a crashed "
                "run cannot resume; pass checkpointer=AsyncSqliteSaver/AsyncPostgresSaver (durable)",
                NoCheckpointerWarning,
                stacklevel=2,
            )

    async def aclose(self) -> None:
        """Release the backends (records pool, hot-state clients, memory, telemetry)."""
        await self.keel_backends.aclose()

    async def __aenter__(self) -> GuardedAgent:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _as_context(value: Any) -> RunContext:
    if isinstance(value, RunContext):
        return value
    if isinstance(value, dict):
        try:
            return RunContext(**value)
        except TypeError as exc:
            raise InvalidContext(f"run context: {exc}") from None
    raise InvalidContext(f"run context must be a keel RunContext or a dict, got {type(value).__name__}")
