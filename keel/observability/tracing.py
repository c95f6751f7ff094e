"""OpenTelemetry traces: a span per run request, per node step, per model call and per tool call.

Span names and attributes follow the OpenTelemetry GenAI semantic conventions (`invoke_agent keel`,
`chat <model>`, `execute_tool <tool>`, `gen_ai.*` attributes) plus keel's own (`keel.*`).

**Run spans and interrupts.** LangGraph runs each node in its own task, so the run span cannot travel in a
context variable from node to node: `Tracing` keeps the open run span of each execution and every node span
is parented to it explicitly. The first node of a request opens it; `finalize` closes it, and so does a
pause for approval (the `interrupt()`), because a paused request may be resumed hours later, in another
process. The resumed request opens a new run span (`keel.resumed=true`) in the *same trace*: the trace id
of every run span is derived from the execution id, so one execution is one trace however many requests
and processes it took, and a collector groups them without any state kept between requests.

**Redaction.** Every exporter is wrapped in `RedactingExporter`: span names, attributes, event names and
attributes (exception messages and stack traces included) and status descriptions pass keel's redactor on
their way out, whatever code set them. One exit point, so a new attribute cannot leak a secret.
"""

from __future__ import annotations

import hashlib
import sys
import threading
import time
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from keel.redaction import redact, redact_text

__all__ = ["Tracing", "TracingConfigError", "Exporter", "RedactingExporter", "trace_id_for", "span_tree"]

Exporter = Literal["none", "console", "otlp"]
_TRACE_ID: ContextVar[int | None] = ContextVar("keel_trace_id", default=None)
_EXPORT_TIMEOUT_S = 5.0


class TracingConfigError(ValueError):
    """The trace exporter settings are unusable."""


def trace_id_for(execution_id: str) -> int:
    """The 128-bit trace id of an execution: its UUID, or a hash of a non-UUID id."""
    try:
        return uuid.UUID(execution_id).int or 1
    except ValueError:
        return int.from_bytes(hashlib.sha256(execution_id.encode()).digest()[:16], "big") or 1


class _ExecutionIds(RandomIdGenerator):
    """Random ids, except a run span's trace id, which comes from its execution id."""

    def generate_trace_id(self) -> int:
        return _TRACE_ID.get() or super().generate_trace_id()


class RedactingExporter(SpanExporter):
    """Hands `inner` a redacted copy of each finished span: the one place spans leave the process."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner

    def export(self, spans: Any) -> SpanExportResult:
        return self.inner.export([redact_span(s) for s in spans])

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def redact_span(span: ReadableSpan) -> ReadableSpan:
    """A copy of `span` whose name, attributes, events and status description are redacted."""
    status = span.status
    if status.description:
        status = Status(status.status_code, redact_text(status.description))
    events = [
        Event(redact_text(e.name), redact(dict(e.attributes or {})), timestamp=e.timestamp)
        for e in span.events
    ]
    return ReadableSpan(
        name=redact_text(span.name),
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=redact(dict(span.attributes or {})),
        events=events,
        links=span.links,
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


@dataclass(slots=True)
class _OpenRun:
    span: Span
    started: float


class Tracing:
    """A tracer provider with keel's exporters, and the open run span of each execution."""

    def __init__(self, provider: TracerProvider, *, stale_after_s: float = 3600.0) -> None:
        self.provider = provider
        self.tracer: Tracer = provider.get_tracer("keel")
        self._runs: dict[str, _OpenRun] = {}
        self._lock = threading.Lock()
        self._stale_after_s = stale_after_s

    @classmethod
    def create(
        cls,
        exporter: Exporter = "none",
        *,
        endpoint: str | None = None,
        service_name: str = "keel",
        version: str = "v1",
        stale_after_s: float = 3600.0,
    ) -> Tracing:
        """Tracing with the named exporter: `none`, `console` (stderr) or `otlp` (HTTP/protobuf)."""
        resource = Resource.create({"service.name": service_name, "service.version": version})
        provider = TracerProvider(resource=resource, id_generator=_ExecutionIds(), shutdown_on_exit=False)
        tracing = cls(provider, stale_after_s=stale_after_s)
        if exporter == "console":
            tracing.add_exporter(ConsoleSpanExporter(out=sys.stderr))
        elif exporter == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            if endpoint is not None and not endpoint.startswith(("http://", "https://")):
                raise TracingConfigError(f"KEEL_OTEL_ENDPOINT must be an http(s) URL, got {endpoint!r}")
            tracing.add_exporter(OTLPSpanExporter(endpoint=endpoint, timeout=_EXPORT_TIMEOUT_S), batch=True)
        elif exporter != "none":
            raise TracingConfigError(f"unknown trace exporter {exporter!r} (known: none, console, otlp)")
        return tracing

    def add_exporter(self, exporter: SpanExporter, *, batch: bool = False) -> None:
        """Send finished spans, redacted, to `exporter` (tests add an in-memory one)."""
        exporter = RedactingExporter(exporter)
        if batch:
            processor: Any = BatchSpanProcessor(exporter, export_timeout_millis=_EXPORT_TIMEOUT_S * 1000)
        else:
            processor = SimpleSpanProcessor(exporter)
        self.provider.add_span_processor(processor)

    # -- run spans ---------------------------------------------------------------------------

    def run_span(self, execution_id: str, *, first_node: str, attributes: dict[str, Any]) -> Span:
        """The open run span of this execution, opened now if this is the first node of a request."""
        with self._lock:
            open_run = self._runs.get(execution_id)
            if open_run is not None:
                return open_run.span
            self._sweep()
            token = _TRACE_ID.set(trace_id_for(execution_id))
            try:
                span = self.tracer.start_span(
                    "invoke_agent keel",
                    context=Context(),
                    kind=SpanKind.INTERNAL,
                    attributes={
                        "gen_ai.operation.name": "invoke_agent",
                        "gen_ai.agent.name": "keel",
                        "keel.execution_id": execution_id,
                        "keel.resumed": first_node != "recall",
                        "keel.first_node": first_node,
                        **attributes,
                    },
                )
            finally:
                _TRACE_ID.reset(token)
            self._runs[execution_id] = _OpenRun(span=span, started=time.monotonic())
            return span

    def end_run(
        self,
        execution_id: str,
        *,
        status: str,
        attributes: dict[str, Any] | None = None,
        error: BaseException | None = None,
    ) -> float | None:
        """Close the run span of this execution; returns how long the request took (None if none open)."""
        with self._lock:
            open_run = self._runs.pop(execution_id, None)
        if open_run is None:
            return None
        span = open_run.span
        span.set_attribute("keel.status", status)
        if attributes:
            span.set_attributes({k: v for k, v in attributes.items() if v is not None})
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"[:200]))
        span.end()
        return time.monotonic() - open_run.started

    def open_runs(self) -> list[str]:
        """Execution ids whose run span is open in this process."""
        with self._lock:
            return list(self._runs)

    def _sweep(self) -> None:
        """End run spans left open by a request that died without an exception reaching a node."""
        now = time.monotonic()
        for eid in [e for e, r in self._runs.items() if now - r.started > self._stale_after_s]:
            run = self._runs.pop(eid)
            run.span.set_attribute("keel.status", "abandoned")
            run.span.end()

    def shutdown(self) -> None:
        """End open run spans, flush and stop the exporters (bounded by the export timeout)."""
        with self._lock:
            runs, self._runs = list(self._runs.values()), {}
        for run in runs:
            run.span.set_attribute("keel.status", "abandoned")
            run.span.end()
        self.provider.shutdown()


def span_tree(spans: list[ReadableSpan], *, attributes: tuple[str, ...] = ()) -> str:
    """Finished spans as an indented tree (children in start order), for humans and the README."""
    by_parent: dict[int | None, list[ReadableSpan]] = {}
    ids = {s.context.span_id for s in spans}
    for s in spans:
        parent = s.parent.span_id if s.parent is not None and s.parent.span_id in ids else None
        by_parent.setdefault(parent, []).append(s)
    lines: list[str] = []

    def walk(parent: int | None, depth: int) -> None:
        for s in sorted(by_parent.get(parent, []), key=lambda x: x.start_time or 0):
            ms = ((s.end_time or 0) - (s.start_time or 0)) / 1e6
            shown = " ".join(
                f"{k}={s.attributes[k]}" for k in attributes if s.attributes and k in s.attributes
            )
            lines.append(f"{'  ' * depth}{s.name}  {ms:.1f} ms{'  ' + shown if shown else ''}".rstrip())
            walk(s.context.span_id, depth + 1)

    walk(None, 0)
    return "\n".join(lines)
