"""Observability: structured logs, OpenTelemetry traces and metrics, health, LangSmith."""

from keel.observability.logging import bind_run, configure_logging, get_logger, user_hash
from keel.observability.metrics import prometheus_text, record_breaker_state, record_budget_remaining
from keel.observability.telemetry import Telemetry
from keel.observability.tracing import Tracing, span_tree, trace_id_for

__all__ = [
    "Telemetry",
    "Tracing",
    "bind_run",
    "configure_logging",
    "get_logger",
    "prometheus_text",
    "record_breaker_state",
    "record_budget_remaining",
    "span_tree",
    "trace_id_for",
    "user_hash",
]
