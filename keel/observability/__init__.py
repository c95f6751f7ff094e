"""Observability: structured logs, OpenTelemetry traces and metrics, health, LangSmith.

The names below load on first use (PEP 562): `keel.observability.logging` is what every command needs,
and importing it must not pull OpenTelemetry or LangSmith (hundreds of milliseconds) into `keel --help`.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_MODULE_OF = {
    "bind_run": "logging",
    "configure_logging": "logging",
    "get_logger": "logging",
    "user_hash": "logging",
    "prometheus_text": "metrics",
    "record_breaker_state": "metrics",
    "record_budget_remaining": "metrics",
    "Telemetry": "telemetry",
    "Tracing": "tracing",
    "span_tree": "tracing",
    "trace_id_for": "tracing",
}


def __getattr__(name: str) -> Any:
    if (module := _MODULE_OF.get(name)) is not None:
        return getattr(import_module(f"keel.observability.{module}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
