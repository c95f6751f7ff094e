"""The composition root: every backend keel uses is built here from the settings, and only here."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.checkpoint.base import BaseCheckpointSaver

from keel.app.arms import attach_rollout, find_rollout
from keel.app.versions import AgentVersion, agent_version
from keel.budget import BudgetLedger
from keel.chain import fallback_models
from keel.config import KeelConfig
from keel.costs import PriceTable, UnknownPrice
from keel.guards import Guard, Guards, NextCall, NoGuards, build_guards
from keel.hotstate.caches import Caches
from keel.memory.stores import MemoryBackends
from keel.memory.writer import MemoryWriter
from keel.models import ModelSetupError, make_chat_model
from keel.observability.telemetry import Telemetry
from keel.policies.matrix import PolicyMatrix
from keel.policies.watcher import PolicyWatcher
from keel.prompts import load_instructions
from keel.records import Records
from keel.rollout.router import Rollout
from keel.rollout.spec import RolloutSpec
from keel.settings import Settings
from keel.tools.executor import ToolExecutor
from keel.tools.from_config import registry_from_config, tool_prices
from keel.tools.registry import ToolRegistry
from keel.tools.workspace import Workspace

__all__ = ["Backends", "open_checkpointer"]

_CHECKPOINT_SETUP_LOCK = 0x6B65656C  # "keel"


@dataclass(kw_only=True)
class Backends:
    """Every backend of one process; `build_graph` hands each node the few it uses. Built without I/O;
    `await ready()` runs migrations once."""

    settings: Settings
    records: Records
    policy: PolicyWatcher
    """The one accessor of the policy in force: `policy.current()` (re-read when its file changes)."""
    prices: PriceTable
    registry: ToolRegistry
    workspace: Workspace
    executor: ToolExecutor
    model: BaseChatModel
    model_name: str
    guards: Guards | NoGuards
    """Budgets, breakers and rate limits (NoGuards only in the benchmark's unguarded baseline)."""
    version: AgentVersion
    """The agent version this process runs (keel.app.versions), computed once when built: every run whose
    caller sets no version records its id; `ready()` stores it in `agent_versions` once."""
    instructions: str | None = None
    """The project's system instructions (keel.yaml `agent.prompt`, `KEEL_PROMPT_FILE`); None: keel's own."""
    models: list[tuple[str, BaseChatModel]] = field(default_factory=list)
    """The fallback chain: (name, model), the primary first."""
    telemetry: Telemetry = field(default_factory=Telemetry.disabled)
    """Logs, traces and the LangSmith tracer (keel.observability)."""
    memory: MemoryBackends | None = None
    """Long-term memory, working memory and the context fitter (memory/)."""
    caches: Caches = field(default_factory=Caches)
    """The model-response and tool result caches (keel.hotstate.caches; off unless configured)."""
    memory_writer: MemoryWriter | None = None
    """Writes run memories from the records queue to long-term memory (a task started by `ready()`, flushed
    by `aclose()`); None when long-term memory is off."""
    config: KeelConfig | None = None
    """The project config these backends run (None: keel's built-in tools)."""
    arm: str | None = None
    """The rollout arm these backends run (None: no rollout, or the process's own config is no arm)."""
    rollout: Rollout | None = None
    """The rollout in force (keel.rollout), shared by the arms' backends; None: no rollout file."""
    arms: dict[str, Backends] = field(default_factory=dict, repr=False)
    """With a rollout, every arm's backends by name (this one among them when its config is an arm's); they
    share this one's records, memory and telemetry (`parent`)."""
    parent: Backends | None = field(default=None, repr=False)
    """The backends an arm's backends share records, memory and telemetry with (None: they own theirs)."""
    base_settings: Settings | None = field(default=None, repr=False)
    """The settings before the config was applied (an arm's config is applied to these)."""
    _close_guards: Callable[[], Awaitable[None]] | None = field(default=None, repr=False)
    _ready: bool = field(default=False, repr=False)
    _version_saved: bool = field(default=False, repr=False)
    _readiness: Callable[[], Awaitable[None]] | None = field(default=None, repr=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    @classmethod
    def from_settings(
        cls,
        settings: Settings | None = None,
        *,
        model: BaseChatModel | None = None,
        model_name: str | None = None,
        registry: ToolRegistry | None = None,
        guards: Sequence[Guard[NextCall]] = (),
        config: KeelConfig | None = None,
        rollout: RolloutSpec | None = None,
        arm_models: Mapping[str, BaseChatModel] | None = None,
        parent: Backends | None = None,
        arm: str | None = None,
    ) -> Backends:
        """Build every backend for the profile the settings name. Bad config fails here, clearly.

        `guards`: the application's own guards, checked before every model call after keel's.
        `config`: the project's keel.yaml (keel.config): it overrides the settings it names and gives the
        tools (unless `registry` is given).
        `rollout`: the rollout to run (default: `settings.rollout_file`, else `rollout.yaml` beside the
        config); each arm's config is built as backends sharing these ones' records, memory and telemetry
        (`arm_models`: a model per arm name instead of its config's, as `model` is for this config).
        `parent`, `arm`: build one arm's backends (keel.app.arms does)."""
        base = settings or Settings()
        settings = config.apply(base) if config is not None else base
        settings.home.mkdir(parents=True, exist_ok=True)
        records = (
            parent.records
            if parent is not None
            else Records.from_url(
                settings.records_url,
                pool_size=settings.records_pool_size,
                pool_timeout_s=settings.records_pool_timeout_s,
            )
        )
        policy = PolicyWatcher(PolicyMatrix.load(settings.policy_file))
        prices = PriceTable.load(settings.prices_file)
        if config is not None:
            prices = prices.with_models(config.model_prices)
        name = model_name or settings.model
        instructions = (
            config.instructions
            if config is not None and config.instructions is not None
            else load_instructions(settings.prompt_file)
            if settings.prompt_file is not None
            else None
        )
        own: dict[str, float] = {}
        if registry is None:
            registry = registry_from_config(config)
            if own := tool_prices(config, registry):
                prices = replace(prices, tools={**prices.tools, **own})
        version = agent_version(
            settings,
            config=config,
            registry=registry,
            instructions=instructions,
            model_name=name,
            tool_prices=own,
        )
        workspace = Workspace(settings.workspace_root)
        with _at_config_line(config):
            model = model or make_chat_model(settings)
            chain = [(name, model), *fallback_models(settings)]
            # The one price check of the chain, before any call (build_guards refuses an unpriced model).
            built, close_guards = build_guards(settings, records, prices, [n for n, _ in chain], extra=guards)
        caches = Caches.from_settings(settings)
        executor = ToolExecutor(
            registry,
            records,
            workspace,
            cache=caches.tools,
            guard=built.tools,
            call_guards=built.before_tool,
            default_timeout_s=settings.tool_timeout_s,
            max_output_chars=settings.max_tool_output_chars,
        )
        if parent is not None:
            memory, telemetry = parent.memory, parent.telemetry
        else:
            memory = MemoryBackends.from_settings(settings)
            telemetry = Telemetry.from_settings(settings)
            if memory.long_term is not None:
                memory.writer = MemoryWriter(
                    records,
                    memory.long_term,
                    lease_s=settings.memory_queue_lease_s,
                    flush_timeout_s=settings.memory_flush_timeout_s,
                )
        built_backends = cls(
            settings=settings,
            records=records,
            policy=policy,
            prices=prices,
            registry=registry,
            workspace=workspace,
            executor=executor,
            model=model,
            model_name=name,
            instructions=instructions,
            guards=built,
            version=version,
            models=chain,
            _close_guards=close_guards,
            telemetry=telemetry,
            memory=memory,
            memory_writer=memory.writer if parent is None and memory is not None else None,
            caches=caches,
            config=config,
            arm=arm,
            parent=parent,
            base_settings=base,
        )
        if parent is None:
            spec = rollout if rollout is not None else find_rollout(settings, config)
            if spec is not None:
                attach_rollout(built_backends, spec, models=arm_models or {})
        return built_backends

    async def ready(self) -> None:
        """Check the records database is reachable and migrated (once per process), store this process's
        agent version if absent (once), and start the memory writer on this event loop (it first writes what
        an earlier process left queued). With a rollout, every arm's version too."""
        if self.parent is not None:
            await self.parent.ready()
        elif not self._ready:
            if self._readiness is not None:  # the server migrates off its event loop
                await self._readiness()
            else:
                async with self._lock:
                    if not self._ready:
                        await self.records.setup()
                        self._ready = True
        await self._save_version()
        if self.memory_writer is not None:
            self.memory_writer.start()
        for child in self.arms.values():
            await child._save_version()

    async def _save_version(self) -> None:
        """Store this version in `agent_versions` if absent (once per process)."""
        if not self._version_saved:
            async with self._lock:
                if not self._version_saved:
                    v = self.version
                    await self.records.save_version(v.id, v.name, v.manifest)
                    self._version_saved = True

    def ready_via(self, readiness: Callable[[], Awaitable[None]]) -> None:
        """Make `ready()` await `readiness` (which must end in `mark_ready()`) instead of migrating here."""
        self._readiness = readiness

    @property
    def is_ready(self) -> bool:
        return self._ready if self.parent is None else self.parent.is_ready

    def mark_ready(self) -> None:
        """Record that the records schema is at head, migrated elsewhere (the server does it off-loop)."""
        self._ready = True

    async def aclose(self) -> None:
        """Flush the memory writer (bounded by `memory_flush_timeout_s`), then release connections (an
        arm's backends release only their own: guards and tools)."""
        for child in self.arms.values():
            if child is not self:
                await child.aclose()
        if self.memory_writer is not None:
            await self.memory_writer.aclose()
        if self._close_guards is not None:
            await self._close_guards()
        await self.registry.aclose()
        await self.caches.close()  # an arm's own (its config's TTLs)
        if self.parent is not None:
            return
        await self.records.close()
        if self.memory is not None:
            await self.memory.aclose()
        self.telemetry.shutdown()

    @property
    def ledger(self) -> BudgetLedger | None:
        """The budget ledger (in the records database; None under the benchmark's NoGuards)."""
        return self.guards.ledger


@contextmanager
def _at_config_line(config: KeelConfig | None) -> Iterator[None]:
    """A model that cannot be built or has no price, written in keel.yaml: a ConfigError at its line."""
    try:
        yield
    except (ModelSetupError, UnknownPrice) as exc:
        model = exc.model_id if isinstance(exc, ModelSetupError) else exc.model
        line = config.model_line(model) if config is not None else 0
        if not line:
            raise
        assert config is not None
        raise config.error(line, str(exc)) from None


async def _try_lock(conn: Any, key: int) -> bool:
    """Take the session advisory lock `key` if it is free (one statement that never waits)."""
    cur = await conn.execute("SELECT pg_try_advisory_lock(%s) AS got", (key,))
    row = await cur.fetchone()
    return bool(row["got"] if isinstance(row, dict) else row[0])


@asynccontextmanager
async def open_checkpointer(settings: Settings) -> AsyncIterator[BaseCheckpointSaver]:
    """The durable checkpointer of the profile: SQLite file (embedded) or PostgreSQL."""
    if settings.profile == "postgres":
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool

        # Autocommit connections (setup() needs them: see the architecture's known traps), pooled so
        # that concurrent runs in one process do not queue behind a single connection.
        async with AsyncConnectionPool(
            settings.checkpoint_url,
            min_size=1,
            max_size=settings.checkpoint_pool_size,
            timeout=settings.checkpoint_pool_timeout_s,
            # A connection the database dropped (a restart, pg_terminate_backend) is replaced at
            # checkout instead of failing the run's next checkpoint read (one round trip a checkout).
            check=AsyncConnectionPool.check_connection,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
            open=False,
        ) as pool:
            saver = AsyncPostgresSaver(pool)
            async with pool.connection() as lock_conn:
                # Replicas starting together would race on the checkpointer's own migrations. The lock is
                # tried, not waited for: a session blocked in `pg_advisory_lock` is a running statement,
                # and the migrations' CREATE INDEX CONCURRENTLY waits for every running statement to end,
                # so the holder would wait on its waiters (the start-up hung on a new database).
                while not await _try_lock(lock_conn, _CHECKPOINT_SETUP_LOCK):  # noqa: ASYNC110 - held by another process
                    await asyncio.sleep(0.05)
                try:
                    await saver.setup()
                finally:
                    await lock_conn.execute("SELECT pg_advisory_unlock(%s)", (_CHECKPOINT_SETUP_LOCK,))
            yield saver
        return
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    settings.home.mkdir(parents=True, exist_ok=True)
    async with AsyncSqliteSaver.from_conn_string(str(settings.checkpoint_path)) as saver:
        await saver.setup()
        yield saver
