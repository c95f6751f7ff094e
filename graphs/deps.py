"""What the graph is built over: the backends `build_graph` hands out, a few to each node.

A protocol, so the graph does not import the application layer that builds them (`keel.app.backends.Backends`
is one; a test can pass its own).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from langchain_core.language_models import BaseChatModel

from keel.costs import PriceTable
from keel.guards import Guards, NoGuards
from keel.hotstate.caches import Caches
from keel.memory.stores import MemoryBackends
from keel.observability.telemetry import Telemetry
from keel.policies.watcher import PolicySource
from keel.records import Records
from keel.settings import Settings
from keel.tools.executor import ToolExecutor
from keel.tools.registry import ToolRegistry

__all__ = ["GraphDeps"]


class GraphDeps(Protocol):
    """The collaborators of the agent graph's nodes and edges (read-only here)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def records(self) -> Records: ...
    @property
    def policy(self) -> PolicySource:
        """The one accessor of the policy in force."""
        ...

    @property
    def prices(self) -> PriceTable: ...
    @property
    def registry(self) -> ToolRegistry: ...
    @property
    def executor(self) -> ToolExecutor: ...
    @property
    def model(self) -> BaseChatModel:
        """The primary model (plan uses it; decide walks `models`)."""
        ...

    @property
    def model_name(self) -> str: ...
    @property
    def instructions(self) -> str | None:
        """The project's system instructions (keel.yaml `agent.prompt`); None: keel's built-in ones."""
        ...

    @property
    def models(self) -> Sequence[tuple[str, BaseChatModel]]:
        """The fallback chain, (name, model), the primary first."""
        ...

    @property
    def guards(self) -> Guards | NoGuards: ...
    @property
    def telemetry(self) -> Telemetry: ...
    @property
    def memory(self) -> MemoryBackends | None: ...
    @property
    def caches(self) -> Caches:
        """The model-response and tool result caches (each None when off)."""
        ...

    async def ready(self) -> None:
        """Make sure the records database is reachable and migrated (once per process)."""
        ...
