"""The composition root: every backend keel uses is built here from the settings, and only here."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from langchain_core.language_models import BaseChatModel
from langgraph.checkpoint.base import BaseCheckpointSaver

from keel.costs import PriceTable
from keel.models import make_chat_model
from keel.records import Records
from keel.settings import Settings
from policies.guards import RunLimits
from policies.matrix import PolicyMatrix
from tools.executor import ToolExecutor
from tools.registry import ToolRegistry, default_registry
from tools.workspace import Workspace

__all__ = ["Backends", "open_checkpointer"]


@dataclass(kw_only=True)
class Backends:
    """What the nodes use. Built without I/O; `await ready()` runs migrations once."""

    settings: Settings
    records: Records
    policy: PolicyMatrix
    prices: PriceTable
    registry: ToolRegistry
    workspace: Workspace
    executor: ToolExecutor
    model: BaseChatModel
    model_name: str
    limits: RunLimits
    _ready: bool = field(default=False, repr=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    @classmethod
    def from_settings(
        cls,
        settings: Settings | None = None,
        *,
        model: BaseChatModel | None = None,
        model_name: str | None = None,
        registry: ToolRegistry | None = None,
    ) -> Backends:
        """Build every backend for the profile the settings name. Bad config fails here, clearly."""
        settings = settings or Settings()
        settings.home.mkdir(parents=True, exist_ok=True)
        records = Records.from_url(settings.records_url)
        policy = PolicyMatrix.load(settings.policy_file)
        prices = PriceTable.load(settings.prices_file)
        name = model_name or settings.model
        prices.check_model(name)
        registry = registry or default_registry()
        workspace = Workspace(settings.workspace_root)
        executor = ToolExecutor(
            registry,
            records,
            workspace,
            default_timeout_s=settings.tool_timeout_s,
            max_args_bytes=settings.max_args_bytes,
            max_output_chars=settings.max_tool_output_chars,
        )
        return cls(
            settings=settings,
            records=records,
            policy=policy,
            prices=prices,
            registry=registry,
            workspace=workspace,
            executor=executor,
            model=model or make_chat_model(settings),
            model_name=name,
            limits=RunLimits(max_steps=settings.max_steps, run_cost_cap=settings.run_cost_cap),
        )

    async def ready(self) -> None:
        """Check the records database is reachable and migrated (once per process)."""
        if self._ready:
            return
        async with self._lock:
            if not self._ready:
                await self.records.setup()
                self._ready = True

    def reload_policy(self) -> PolicyMatrix:
        """Re-read the permission matrix; on error the current one stays in force."""
        self.policy = self.policy.reload()
        return self.policy

    async def aclose(self) -> None:
        """Release connections."""
        await self.records.close()


@asynccontextmanager
async def open_checkpointer(settings: Settings) -> AsyncIterator[BaseCheckpointSaver]:
    """The durable checkpointer of the profile: SQLite file (embedded) or PostgreSQL."""
    if settings.profile == "postgres":
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from psycopg import AsyncConnection
        from psycopg.rows import dict_row

        # setup() needs an autocommit connection (see the architecture's known traps).
        async with await AsyncConnection.connect(
            settings.checkpoint_url, autocommit=True, prepare_threshold=0, row_factory=dict_row
        ) as conn:
            saver = AsyncPostgresSaver(conn)
            await saver.setup()
            yield saver
        return
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    settings.home.mkdir(parents=True, exist_ok=True)
    async with AsyncSqliteSaver.from_conn_string(str(settings.checkpoint_path)) as saver:
        await saver.setup()
        yield saver
