"""`Telemetry`: what the composition root builds from settings (logs, traces, LangSmith) and closes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from keel.observability.langsmith import DEFAULT_ARM, LangSmith, root_run_id, run_metadata, run_tags
from keel.observability.logging import configure_logging
from keel.observability.tracing import Tracing

if TYPE_CHECKING:
    from keel.context import RunContext
    from keel.settings import Settings

__all__ = ["Telemetry"]


@dataclass(kw_only=True)
class Telemetry:
    """One process's tracing and LangSmith tracer. Metrics are process-wide (`keel.observability.metrics`)."""

    tracing: Tracing
    langsmith: LangSmith | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Telemetry:
        """Configure logging and build the trace exporter and the LangSmith tracer the settings ask for."""
        configure_logging(settings.log_level, settings.log_format)
        tracing = Tracing.create(
            settings.otel_exporter,
            endpoint=settings.otel_endpoint,
            service_name=settings.otel_service_name,
            version=settings.version,
            stale_after_s=settings.run_timeout_s * 2 + 60,
        )
        return cls(tracing=tracing, langsmith=LangSmith.from_env())

    @classmethod
    def disabled(cls) -> Telemetry:
        """Spans go nowhere, no LangSmith (for backends built by hand)."""
        return cls(tracing=Tracing.create("none"))

    def run_config(
        self, config: dict[str, Any], ctx: RunContext, *, arm: str = DEFAULT_ARM, first: bool = False
    ) -> dict[str, Any]:
        """`config` plus the run's metadata and tags, and keel's redacting LangSmith tracer when on.
        `first`: the execution's first invocation, whose root run gets the id `root_run_id(execution_id)`
        (feedback on the execution is sent to LangSmith on that run)."""
        out = dict(config)
        if first:
            out["run_id"] = root_run_id(ctx.execution_id)
        meta = run_metadata(
            execution_id=ctx.execution_id,
            user_id=ctx.user_id,
            version=ctx.version,
            tenant=ctx.tenant,
            arm=arm,
        )
        out["metadata"] = {**config.get("metadata", {}), **meta}
        out["tags"] = [*config.get("tags", []), *run_tags(version=ctx.version, arm=arm)]
        if self.langsmith is not None:
            out["callbacks"] = [*config.get("callbacks", []), self.langsmith.tracer]
        return out

    def shutdown(self) -> None:
        """Flush and stop exporters; bounded, never raises."""
        try:
            self.tracing.shutdown()
        finally:
            if self.langsmith is not None:
                self.langsmith.close()
