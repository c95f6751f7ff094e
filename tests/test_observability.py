"""Traces, logs and metrics of real runs: the span tree of a run with an approval and two tool calls."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from keel.cli import app
from keel.observability import configure_logging, prometheus_text, span_tree, trace_id_for, user_hash
from keel.observability.metrics import record_breaker_state, record_budget_remaining
from keel.settings import Settings

CANARY = "sk-proj-Zx81Qw7Rt2Yu9Io3Pa6Sd4Fg0Hj5Kl"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Telemetry does not depend on the storage profile: the embedded one is enough here."""
    return Settings(home=tmp_path)


def _two_calls() -> AIMessage:
    return AIMessage(
        content="",
        tool_calls=[
            {"name": "read_file", "args": {"path": "shared/handbook.md"}, "id": "call_read"},
            {"name": "delete_file", "args": {"path": "~/draft.md"}, "id": "call_delete"},
        ],
    )


def _children(spans, parent):
    return sorted(
        (s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id),
        key=lambda s: s.start_time,
    )


async def test_span_tree_of_a_run_paused_for_approval_then_approved(make_keel, workspace: Path):
    exporter = InMemorySpanExporter()
    async with make_keel([_two_calls(), "Read it and deleted the draft."]) as keel:
        keel.backends.telemetry.tracing.add_exporter(exporter)
        paused = await keel.run("read the handbook then delete ~/draft.md", user_id="alice")
        assert paused.status == "awaiting_approval"
        first = exporter.get_finished_spans()
        approval_id = paused.approval["approval_id"]
        done = await keel.decide(approval_id, "approve", approver="ops", approver_role="admin")
        assert done.status == "succeeded"
        assert keel.backends.telemetry.tracing.open_runs() == []
    spans = exporter.get_finished_spans()
    print(span_tree(list(spans), attributes=("keel.decision", "gen_ai.tool.name", "keel.status")))

    runs = sorted((s for s in spans if s.name == "invoke_agent keel"), key=lambda s: s.start_time)
    assert len(runs) == 2 and all(s.parent is None for s in runs)
    assert {s.context.trace_id for s in spans} == {trace_id_for(paused.execution_id)}
    paused_run, resumed_run = runs
    assert paused_run in first and resumed_run not in first
    assert paused_run.attributes["keel.status"] == "awaiting_approval"
    assert paused_run.attributes["keel.resumed"] is False
    assert paused_run.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert paused_run.attributes["keel.execution_id"] == paused.execution_id
    assert paused_run.attributes["gen_ai.conversation.id"] == paused.thread_id
    assert paused_run.attributes["keel.user"] == user_hash("alice") != "alice"
    assert resumed_run.attributes["keel.resumed"] is True
    assert resumed_run.attributes["keel.status"] == "succeeded"
    assert "keel.terminated_reason" not in resumed_run.attributes
    assert resumed_run.attributes["gen_ai.usage.input_tokens"] == 30  # plan + two decide turns, 10 each
    assert resumed_run.attributes["keel.cost_usd"] >= 0

    nodes = [s.name for s in _children(spans, paused_run)]
    assert nodes == ["node recall", "node plan", "node decide", "node permission_check", "node approval"]
    by_name = {s.name: s for s in _children(spans, paused_run)}
    approval_paused = by_name["node approval"]
    assert approval_paused.attributes["keel.paused"] is True
    assert [e.name for e in approval_paused.events] == ["interrupt"]
    (plan_chat,) = _children(spans, by_name["node plan"])
    assert plan_chat.name == "chat fake-model"
    assert plan_chat.attributes["gen_ai.operation.name"] == "chat"
    assert plan_chat.attributes["gen_ai.request.model"] == "fake-model"
    assert (
        plan_chat.attributes["gen_ai.usage.input_tokens"],
        plan_chat.attributes["gen_ai.usage.output_tokens"],
    ) == (
        10,
        5,
    )
    (decide_chat,) = _children(spans, by_name["node decide"])
    assert decide_chat.attributes["keel.tool_calls"] == 2
    perm = by_name["node permission_check"]
    assert list(perm.attributes["keel.decision"]) == ["allow", "ask"]
    decisions = {e.attributes["gen_ai.tool.name"]: e.attributes for e in perm.events}
    assert decisions["read_file"]["keel.decision"] == "allow"
    assert decisions["delete_file"]["keel.decision"] == "ask"
    assert "delete_*" in decisions["delete_file"]["keel.rule"]
    assert decisions["delete_file"]["gen_ai.tool.call.id"] == "call_delete"

    nodes = [s.name for s in _children(spans, resumed_run)]
    assert nodes == ["node approval", "node tool", "node decide", "node finalize"]
    by_name = {s.name: s for s in _children(spans, resumed_run)}
    assert by_name["node approval"].attributes["keel.decision"] == "approve"
    assert by_name["node approval"].attributes["keel.approved_by"] == "ops"
    tools = _children(spans, by_name["node tool"])
    assert [s.name for s in tools] == ["execute_tool read_file", "execute_tool delete_file"]
    read, delete = (dict(s.attributes) for s in tools)
    assert read["gen_ai.operation.name"] == delete["gen_ai.operation.name"] == "execute_tool"
    assert (read["gen_ai.tool.call.id"], read["keel.decision"], read["keel.tool.status"]) == (
        "call_read",
        "allow",
        "ok",
    )
    assert (delete["gen_ai.tool.call.id"], delete["keel.decision"]) == ("call_delete", "approve")
    assert delete["keel.resource"] == "own:draft.md" and delete["keel.approved_by"] == "ops"
    assert by_name["node finalize"].attributes["keel.status"] == "succeeded"
    assert not (workspace / "home" / "alice" / "draft.md").exists()


async def test_a_terminated_run_carries_its_reason(make_keel):
    exporter = InMemorySpanExporter()
    turns = [
        AIMessage(content="", tool_calls=[{"name": "list_files", "args": {"path": "shared"}, "id": f"c{i}"}])
        for i in range(3)
    ]
    async with make_keel(turns, max_steps=2) as keel:
        keel.backends.telemetry.tracing.add_exporter(exporter)
        out = await keel.run("list shared forever", user_id="alice")
    assert out.terminated_reason == "max_steps"
    (run,) = [s for s in exporter.get_finished_spans() if s.name == "invoke_agent keel"]
    assert run.attributes["keel.terminated_reason"] == "max_steps"
    assert run.attributes["keel.status"] == "terminated"
    fallback = next(s for s in exporter.get_finished_spans() if s.name == "node fallback")
    assert fallback.attributes["keel.terminated_reason"] == "max_steps"


async def test_every_log_line_carries_the_run_and_secrets_are_redacted(make_keel):
    buffer = io.StringIO()
    async with make_keel(
        [
            AIMessage(
                content="",
                tool_calls=[
                    {"name": "write_file", "args": {"path": "~/k.md", "content": f"key {CANARY}"}, "id": "w1"}
                ],
            ),
            f"stored {CANARY}",
        ]
    ) as keel:
        configure_logging("info", "json", stream=buffer)
        try:
            out = await keel.run(f"write ~/k.md: key {CANARY}", user_id="alice")
        finally:
            configure_logging("info", "auto")
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    steps = [line for line in lines if line["event"] == "node_step"]
    assert [s["node"] for s in steps] == [
        "recall",
        "plan",
        "decide",
        "tool",
        "decide",
        "finalize",
    ]
    for line in lines:
        assert line["execution_id"] == out.execution_id and line["thread_id"] == out.thread_id
        assert line["user"] == user_hash("alice") and line["version"] == keel.backends.version.id
    # the turn's one call was allowed: decided in decide's step, which logs the decision and its rule
    assert steps[2]["decision"] == ["allow"] and "write_*" in steps[2]["rule"][0]
    assert {"model_call", "tool_call"} <= {line["event"] for line in lines}
    assert CANARY not in buffer.getvalue() and "alice" not in buffer.getvalue()


def _metric(family: str, sample: str, **labels: str) -> float:
    """One labelled series of the process-wide registry (summed over the labels not given)."""
    families = {f.name: f for f in text_string_to_metric_families(prometheus_text())}
    if family not in families:
        return 0.0
    return sum(
        s.value for s in families[family].samples if s.name == sample and labels.items() <= s.labels.items()
    )


async def test_prometheus_text_parses_and_counts_the_run(make_keel):
    """The registry is process-wide: each series is read before and after, and the run's delta asserted."""
    series = {
        "read_ok": ("keel_tool_calls", "keel_tool_calls_total", {"tool": "read_file", "status": "ok"}),
        "write_denied": (
            "keel_permission_decisions",
            "keel_permission_decisions_total",
            {"tool": "write_file", "decision": "deny"},
        ),
        "input_tokens": ("keel_tokens", "keel_tokens_total", {"model": "fake-model", "type": "input"}),
        "succeeded": ("keel_runs", "keel_runs_total", {"status": "succeeded"}),
        "finalize_steps": (
            "keel_step_duration_seconds",
            "keel_step_duration_seconds_count",
            {"node": "finalize"},
        ),
    }
    before = {k: _metric(f, s, **labels) for k, (f, s, labels) in series.items()}
    async with make_keel(
        [
            AIMessage(
                content="",
                tool_calls=[
                    {"name": "read_file", "args": {"path": "shared/handbook.md"}, "id": "r1"},
                    {"name": "write_file", "args": {"path": "shared/x.md", "content": "x"}, "id": "w1"},
                ],
            ),
            "done",
        ]
    ) as keel:
        out = await keel.run("read and write", user_id="alice")
        execution = await keel.records.get_execution(out.execution_id)
    record_breaker_state("model:fake-model", "open")
    record_budget_remaining("tenant:default", 7.5)
    delta = {k: _metric(f, s, **labels) - before[k] for k, (f, s, labels) in series.items()}
    assert delta == {
        "read_ok": 1,
        "write_denied": 1,
        "input_tokens": execution.input_tokens,
        "succeeded": 1,
        "finalize_steps": 1,
    }
    assert execution.input_tokens >= 20
    families = {f.name: f for f in text_string_to_metric_families(prometheus_text())}

    def value(family: str, sample: str, **labels: str) -> float:
        return sum(
            s.value
            for s in families[family].samples
            if s.name == sample and labels.items() <= s.labels.items()
        )

    assert value("keel_breaker_state", "keel_breaker_state", target="model:fake-model") == 2
    assert value("keel_budget_remaining_usd", "keel_budget_remaining_usd", scope="tenant:default") == 7.5


def test_keel_metrics_reads_figures_from_the_records_not_this_process(tmp_path):
    # This process's Prometheus text is what GET /keel/metrics serves (`keel metrics --url`, tested in
    # tests/test_cli_ops.py); without --url the CLI reports the stores' figures.
    result = CliRunner().invoke(app, ["metrics", "--json"], env={"KEEL_HOME": str(tmp_path)})
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["total_executions"] == 0 and figures["breakers"] == {}
    assert {f.name for f in text_string_to_metric_families(prometheus_text())} >= {"keel_info"}
