"""OpenTelemetry metrics of the process, exposed in the Prometheus text format.

One meter provider per process (Prometheus scrapes a process), reading into a private
`prometheus_client` registry, so `prometheus_text()` returns exactly keel's metrics. The recording helpers
are what the node/model/tool instrumentation calls; `record_breaker_state` and `record_budget_remaining`
are hooks for the breaker and budget code.
"""

from __future__ import annotations

import threading
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, generate_latest

from keel.redaction import redact_text
from keel.tool_status import TOOL_FAILURES

__all__ = [
    "prometheus_text",
    "record_run",
    "record_step",
    "record_model_call",
    "record_tool_call",
    "record_decision",
    "record_breaker_state",
    "record_budget_remaining",
    "BREAKER_STATES",
]

try:
    _VERSION = version("keel")
except PackageNotFoundError:  # running from a source tree
    _VERSION = "unknown"
BreakerState = Literal["closed", "half_open", "open"]
BREAKER_STATES: dict[str, int] = {"closed": 0, "half_open": 1, "open": 2}
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class _Redacted:
    """An instrument whose label values pass the redactor: labels leave the process on every scrape, and
    some come from outside (a tool name from the model, an error reason from a provider)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def add(self, amount: float, attributes: dict[str, Any]) -> None:
        self._inner.add(amount, _labels(attributes))

    def record(self, amount: float, attributes: dict[str, Any]) -> None:
        self._inner.record(amount, _labels(attributes))

    def set(self, amount: float, attributes: dict[str, Any]) -> None:
        self._inner.set(amount, _labels(attributes))


def _labels(attributes: dict[str, Any]) -> dict[str, Any]:
    return {k: redact_text(v) if isinstance(v, str) else v for k, v in attributes.items()}


class _RedactingMeter:
    """Creates keel's instruments, each wrapped in `_Redacted`."""

    def __init__(self, meter: Any) -> None:
        self._meter = meter

    def __getattr__(self, name: str) -> Any:
        create = getattr(self._meter, name)
        return lambda *args, **kwargs: _Redacted(create(*args, **kwargs))


class _Instruments:
    """Every instrument keel records, created once; label values are redacted (`_Redacted`)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        reader = PrometheusMetricReader(registry=self.registry)
        self.provider = MeterProvider(
            metric_readers=[reader], resource=Resource.create({"service.name": "keel"})
        )
        m = _RedactingMeter(self.provider.get_meter("keel"))
        self.runs = m.create_counter("keel.runs", "{run}", "Run requests ended, by status and reason")
        self.run_duration = m.create_histogram(
            "keel.run.duration",
            "s",
            "Wall time of a run request",
            explicit_bucket_boundaries_advisory=_SECONDS,
        )
        self.step_duration = m.create_histogram(
            "keel.step.duration",
            "s",
            "Wall time of one node step",
            explicit_bucket_boundaries_advisory=_SECONDS,
        )
        self.model_duration = m.create_histogram(
            "gen_ai.client.operation.duration",
            "s",
            "Duration of a model call",
            explicit_bucket_boundaries_advisory=_SECONDS,
        )
        self.tokens = m.create_counter("keel.tokens", "{token}", "Model tokens, by model and type")
        self.cost = m.create_counter("keel.cost", "usd", "Money spent, by kind (model or tool)")
        self.tool_calls = m.create_counter("keel.tool.calls", "{call}", "Tool calls, by tool and status")
        self.tool_failures = m.create_counter(
            "keel.tool.failures", "{call}", "Tool calls that ended in error or timeout, by tool"
        )
        self.tool_duration = m.create_histogram(
            "keel.tool.duration", "s", "Duration of a tool call", explicit_bucket_boundaries_advisory=_SECONDS
        )
        self.decisions = m.create_counter(
            "keel.permission.decisions", "{decision}", "Permission and approval decisions, by tool"
        )
        self.breaker = m.create_gauge(
            "keel.breaker.state", "1", "Circuit breaker: 0 closed, 1 half open, 2 open"
        )
        self.budget = m.create_gauge("keel.budget.remaining", "usd", "Budget left, by scope")
        m.create_gauge("keel.info", "1", "Always 1; labels say which keel this is").set(
            1, {"package": _VERSION}
        )


_lock = threading.Lock()
_instruments: _Instruments | None = None


def _m() -> _Instruments:
    global _instruments
    if _instruments is None:
        with _lock:
            if _instruments is None:
                _instruments = _Instruments()
    return _instruments


def prometheus_text() -> str:
    """The process's keel metrics in the Prometheus text exposition format (for `GET /metrics`)."""
    return generate_latest(_m().registry).decode()


def record_run(seconds: float, *, status: str, terminated_reason: str | None, version: str) -> None:
    """A run request ended (finished, terminated, paused for approval or failed)."""
    attrs = {"status": status, "terminated_reason": terminated_reason or "none", "version": version}
    _m().runs.add(1, attrs)
    _m().run_duration.record(seconds, attrs)


def record_step(node: str, seconds: float, *, outcome: str) -> None:
    """One node step ran (`outcome`: ok, interrupted or error)."""
    _m().step_duration.record(seconds, {"node": node, "outcome": outcome})


def record_model_call(
    model: str,
    seconds: float,
    *,
    input_tokens: int,
    output_tokens: int,
    cost: float,
    error: str | None = None,
) -> None:
    """One model call, its tokens and cost (`error`: the failure reason, if it failed)."""
    m = _m()
    m.model_duration.record(
        seconds,
        {"gen_ai.operation.name": "chat", "gen_ai.request.model": model, "error.type": error or "none"},
    )
    m.tokens.add(input_tokens, {"model": model, "type": "input"})
    m.tokens.add(output_tokens, {"model": model, "type": "output"})
    m.cost.add(cost, {"kind": "model", "model": model})


def record_tool_call(tool: str, status: str, seconds: float, *, cost: float = 0.0) -> None:
    """One tool call through the executor, labelled with its ToolStatus (ok, refused, invalid, timeout,
    failed, replayed: keel.tool_status)."""
    m = _m()
    m.tool_calls.add(1, {"tool": tool, "status": status})
    m.tool_duration.record(seconds, {"tool": tool})
    if status in TOOL_FAILURES:
        m.tool_failures.add(1, {"tool": tool, "status": status})
    if cost:
        m.cost.add(cost, {"kind": "tool", "model": "none"})


def record_decision(tool: str, decision: str) -> None:
    """A permission decision (allow, deny, ask, invalid) or an approval decision (approve, reject)."""
    _m().decisions.add(1, {"tool": tool or "unknown", "decision": decision})


def record_breaker_state(target: str, state: BreakerState) -> None:
    """Hook for the circuit breakers: the state of the breaker guarding `target` (a model or a tool)."""
    if state not in BREAKER_STATES:
        raise ValueError(f"unknown breaker state {state!r} (known: {', '.join(BREAKER_STATES)})")
    _m().breaker.set(BREAKER_STATES[state], {"target": target})


def record_budget_remaining(scope: str, usd: float) -> None:
    """Hook for the budgets: money left in `scope` (e.g. `tenant:acme`, `user:<hash>`)."""
    _m().budget.set(usd, {"scope": scope})
