"""Issue 11, item 11: a secret in a model error, a tool argument or a file path never leaves the process.

Canaries are put where they reach spans today: the error body of the model provider (the real ChatOpenAI
client against the local OpenAI-compatible server), a tool argument and a file path (the tool's resource).
Every exit is then read back: span names, attributes, events and status descriptions (in-memory
exporter), the execution record's `error`, the audit rows (`resource`, `args`, `detail`), structlog output
and the Prometheus text.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from keel.app.service import Keel
from keel.observability import configure_logging, prometheus_text
from keel.settings import Settings
from keel.testing.openai_server import FakeOpenAIServer, Fault, Reply

CANARY = "sk-proj-Qm7Lp2Xv9Tr4Wz8Nk3Hb6Jd1Fs5Gc0AeYu"
MARK = CANARY[8:20]  # a fragment: no part of the canary may leave either


def _span_texts(spans: list[ReadableSpan]) -> Iterator[str]:
    for s in spans:
        yield s.name
        yield json.dumps(dict(s.attributes or {}), default=str)
        yield s.status.description or ""
        for e in s.events:
            yield e.name
            yield json.dumps(dict(e.attributes or {}), default=str)


def _leaks(*texts: Any) -> list[str]:
    return [str(t)[:300] for t in texts if t is not None and MARK in str(t)]


def _exits(spans: list[ReadableSpan], ex: Any, audit: list[str], logs: str) -> dict[str, list[str]]:
    """What leaked, by exit point (all empty when nothing did)."""
    return {
        "spans": _leaks(*_span_texts(spans)),
        "execution record": _leaks(ex.error, ex.answer),
        "audit": _leaks(*audit),
        "logs": _leaks(*logs.splitlines()),
        "metrics": _leaks(*prometheus_text().splitlines()),
    }


NOTHING = {"spans": [], "execution record": [], "audit": [], "logs": [], "metrics": []}


@pytest.fixture
def log_buffer() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    configure_logging("info", "json", stream=buffer)
    try:
        yield buffer
    finally:
        configure_logging("info", "auto")


async def _audit_texts(keel: Keel, execution_id: str) -> list[str]:
    rows = await keel.records.audit_for(execution_id=execution_id)
    return [json.dumps([r.resource, r.args, r.detail, r.tool], default=str) for r in rows]


async def test_a_secret_in_a_model_error_never_leaves(
    tmp_path: Path, server: FakeOpenAIServer, log_buffer: io.StringIO
) -> None:
    message = f"upstream rejected the request: invalid key {CANARY} in header"
    server.enqueue(Reply(content="plan"), Fault.http(500, message=message), Fault.http(500, message=message))
    settings = Settings(
        home=tmp_path,
        model_provider="openai",
        openai_base_url=server.base_url,
        model="fake-model",
        openai_api_key="test-key",
    )
    exporter = InMemorySpanExporter()
    async with Keel.open(settings) as keel:
        keel.backends.telemetry.tracing.add_exporter(exporter)
        out = await keel.run("hi", user_id="alice")
        ex = await keel.records.get_execution(out.execution_id)
        audit = await _audit_texts(keel, out.execution_id)
    assert out.terminated_reason == "llm_unavailable"
    spans = list(exporter.get_finished_spans())
    failed = [s for s in spans if s.name.startswith("chat ") and s.status.description]
    assert failed, "the failed model call has a span with a status description"
    assert _exits(spans, ex, audit, log_buffer.getvalue()) == NOTHING
    status = failed[0].status.description or ""
    assert "upstream rejected the request" in status and "[REDACTED]" in status  # the evidence stays


async def test_a_secret_in_a_tool_argument_and_a_path_never_leaves(
    make_keel, settings: Settings, workspace: Path, log_buffer: io.StringIO
) -> None:
    secret_path = f"shared/notes-{CANARY}.md"
    calls = AIMessage(
        content="",
        tool_calls=[
            {"name": "read_file", "args": {"path": secret_path}, "id": "call_read"},
            {"name": "write_file", "args": {"path": f"~/{CANARY}.md", "content": f"k={CANARY}"}, "id": "w"},
        ],
    )
    exporter = InMemorySpanExporter()
    async with make_keel([calls, "done"]) as keel:
        keel.backends.telemetry.tracing.add_exporter(exporter)
        out = await keel.run("read my notes", user_id="alice")
        ex = await keel.records.get_execution(out.execution_id)
        audit = await _audit_texts(keel, out.execution_id)
    spans = list(exporter.get_finished_spans())
    tool_spans = [s for s in spans if s.name.startswith("execute_tool ")]
    assert tool_spans and all("keel.resource" in (s.attributes or {}) for s in tool_spans)
    assert _exits(spans, ex, audit, log_buffer.getvalue()) == NOTHING
    resources = [str((s.attributes or {})["keel.resource"]) for s in tool_spans]
    assert any(r.startswith("shared:notes-") and "[REDACTED]" in r for r in resources)  # the path stays


async def test_a_secret_in_a_tool_name_never_reaches_metric_labels(
    make_keel, settings: Settings, log_buffer: io.StringIO
) -> None:
    """The model names the tool; the name becomes a metric label and a span attribute."""
    call = AIMessage(content="", tool_calls=[{"name": f"fetch_{CANARY}", "args": {}, "id": "call_x"}])
    exporter = InMemorySpanExporter()
    async with make_keel([call, "done"]) as keel:
        keel.backends.telemetry.tracing.add_exporter(exporter)
        out = await keel.run("fetch it", user_id="alice")
        ex = await keel.records.get_execution(out.execution_id)
        audit = await _audit_texts(keel, out.execution_id)
    assert 'tool="fetch_[REDACTED]"' in prometheus_text()  # the decision was counted, its label redacted
    assert _exits(list(exporter.get_finished_spans()), ex, audit, log_buffer.getvalue()) == NOTHING


def test_a_logged_traceback_keeps_its_paths_and_loses_its_secret(log_buffer: io.StringIO) -> None:
    """Server logs: the traceback's file paths and words are evidence; the key in the message is not."""
    from keel.observability import get_logger

    try:
        raise RuntimeError(f"request failed for thread 6f1c2b7e9a0d4c3b8e5f1a2d3c4b5a69 with key {CANARY}")
    except RuntimeError:
        get_logger("keel").exception("node_failed")
    line = json.loads(log_buffer.getvalue().splitlines()[-1])
    assert __file__ in line["exception"]
    assert "request failed for thread 6f1c2b7e9a0d4c3b8e5f1a2d3c4b5a69" in line["exception"]
    assert MARK not in log_buffer.getvalue()
