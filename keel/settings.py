"""keel's settings: one pydantic-settings object, read from `KEEL_*` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_PACKAGE_POLICIES = Path(__file__).resolve().parent.parent / "policies"

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Everything that differs between the embedded default and a production deployment."""

    model_config = SettingsConfigDict(env_prefix="KEEL_", env_file=None, extra="ignore", frozen=True)

    profile: Literal["embedded", "postgres"] = "embedded"
    """`embedded`: SQLite files under `home`, no server needed. `postgres`: PostgreSQL (and Redis later)."""

    home: Path = Path(".keel")
    """Folder for the embedded profile's files (checkpoints, records, workspace)."""

    database_url: str | None = None
    """PostgreSQL URL for the `postgres` profile, e.g. `postgresql://127.0.0.1:5432/keel`."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    """Redis URL for hot state in the `postgres` profile."""

    workspace: Path | None = None
    """Root of the files the file tools may touch; `<home>/workspace` when unset."""

    policy_file: Path = _PACKAGE_POLICIES / "default.yaml"
    """The permission matrix."""

    prices_file: Path = _PACKAGE_POLICIES / "prices.yaml"
    """Model and tool prices."""

    model_provider: Literal["scripted", "openai"] = "scripted"
    """`scripted`: the offline scripted model (labelled as such). `openai`: any OpenAI-compatible server."""

    model: str = "keel-scripted"
    """Model name sent to the provider (and looked up in the price table)."""

    openai_base_url: str | None = None
    """Base URL of the OpenAI-compatible server (OpenAI, vLLM, Ollama, …)."""

    openai_api_key: SecretStr = SecretStr("not-needed")
    """API key for the OpenAI-compatible server."""

    model_timeout_s: float = Field(default=60.0, gt=0)
    """Timeout of one model request."""

    max_output_tokens: int = Field(default=1024, gt=0)
    """`max_tokens` sent with every model call (also the output side of the cost estimate)."""

    plan_enabled: bool = True
    """Whether the plan node asks the model for a short plan before acting."""

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

    max_args_bytes: int = Field(default=65_536, gt=0)
    """Largest tool-call argument payload accepted, as JSON bytes."""

    max_tool_output_chars: int = Field(default=20_000, gt=0)
    """Tool output longer than this enters state truncated, with a marker."""

    version: str = "v1"
    """Graph/prompt version recorded with every execution."""

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
        if self.model_provider == "openai" and not self.openai_base_url:
            raise ValueError("model_provider=openai needs KEEL_OPENAI_BASE_URL")
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
