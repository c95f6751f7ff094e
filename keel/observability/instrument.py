"""Where the graph meets telemetry: a node wrapper, a model-call decorator and a tool-call wrapper.

Each takes the process's `Telemetry`, opens its span, binds or uses the log context, logs one line and
records metrics. The nodes themselves stay unaware of telemetry: `graphs/agent.py` wraps them,
`nodes/_shared.call_model` passes each model call through `traced_model_call`, and `nodes/tool.py` each
executor call through `traced_tool_call`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from langgraph.errors import GraphBubbleUp
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from keel.errors import describe
from keel.observability import metrics
from keel.observability.logging import bind_run, get_logger, user_hash
from keel.observability.summary import node_summary
from keel.observability.telemetry import Telemetry
from keel.redaction import redact_text
from keel.tool_status import TOOL_FAILURES

__all__ = ["instrument_node", "traced_model_call", "traced_tool_call"]

_T = TypeVar("_T")
_log = get_logger("keel")


def instrument_node(
    telemetry: Telemetry, name: str, fn: Callable[..., Awaitable[dict[str, Any]]], *, arm: str | None = None
):
    """Wrap a node: its span (child of the run span), its log context, one log line, step metrics. `arm`:
    the rollout arm the graph runs (the run span's `keel.arm`)."""
    own = {"keel.arm": arm} if arm is not None else {}

    @functools.wraps(fn)
    async def node(state: Mapping[str, Any], config: Any, runtime: Any) -> dict[str, Any]:
        tracing = telemetry.tracing
        run = runtime.context
        thread = str((config.get("configurable") or {}).get("thread_id", ""))
        run_span = tracing.run_span(
            run.execution_id,
            first_node=name,
            attributes={
                "gen_ai.conversation.id": thread,
                "keel.user": user_hash(run.user_id),
                "keel.role": run.role,
                "keel.tenant": run.tenant,
                "keel.version": run.version,
                **own,
            },
        )
        with (
            bind_run(
                execution_id=run.execution_id,
                thread_id=thread,
                user_id=run.user_id,
                version=run.version,
                node=name,
            ),
            tracing.tracer.start_as_current_span(
                f"node {name}",
                context=trace.set_span_in_context(run_span),
                attributes={"keel.node": name, "keel.execution_id": run.execution_id},
                record_exception=False,
                set_status_on_exception=False,
            ) as span,
        ):
            started = time.perf_counter()
            try:
                update = await fn(state, config, runtime)
            except GraphBubbleUp:
                elapsed = time.perf_counter() - started
                span.add_event("interrupt")
                span.set_attribute("keel.paused", True)
                metrics.record_step(name, elapsed, outcome="interrupted")
                _log.info("node_paused", reason="awaiting_approval", duration_ms=round(elapsed * 1000, 1))
                _end_run(telemetry, run, thread, state, status="awaiting_approval")
                raise
            except BaseException as exc:
                elapsed = time.perf_counter() - started
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:200]))
                metrics.record_step(name, elapsed, outcome="error")
                _log.error("node_failed", error=f"{type(exc).__name__}: {exc}")
                _end_run(telemetry, run, thread, state, status="failed", error=exc)
                raise
            elapsed = time.perf_counter() - started
            summary = node_summary(name, state, update or {})
            for event in summary.events:
                span.add_event(event.pop("name"), event)
                if "keel.decision" in event:
                    metrics.record_decision(
                        str(event.get("gen_ai.tool.name", "")), str(event["keel.decision"])
                    )
            span.set_attributes(summary.attributes)
            metrics.record_step(name, elapsed, outcome="ok")
            _log.info(
                "node_step",
                duration_ms=round(elapsed * 1000, 1),
                **{k.removeprefix("keel."): v for k, v in summary.attributes.items()},
            )
        if name == "finalize":
            final = {**state, **(update or {})}
            _end_run(telemetry, run, thread, final, status=str(final.get("status", "succeeded")))
        return update

    return node


def _end_run(
    telemetry: Telemetry,
    run: Any,
    thread: str,
    state: Mapping[str, Any],
    *,
    status: str,
    error: BaseException | None = None,
) -> None:
    reason = state.get("terminated_reason")
    seconds = telemetry.tracing.end_run(
        run.execution_id,
        status=status,
        error=error,
        attributes={
            "keel.terminated_reason": reason,
            "keel.cost_usd": float(state.get("run_cost", 0.0)),
            "keel.steps": int(state.get("steps", 0)),
            "gen_ai.usage.input_tokens": int(state.get("input_tokens", 0)),
            "gen_ai.usage.output_tokens": int(state.get("output_tokens", 0)),
        },
    )
    if seconds is None:
        return
    metrics.record_run(seconds, status=status, terminated_reason=reason, version=run.version)
    with bind_run(execution_id=run.execution_id, thread_id=thread, user_id=run.user_id, version=run.version):
        _log.info("run_request_ended", status=status, terminated_reason=reason, seconds=round(seconds, 3))


async def traced_model_call(
    telemetry: Telemetry, pending: Awaitable[_T], *, model: str, provider: str, max_tokens: int
) -> _T:
    """Await one model call (`pending`, a `ModelCall` when it returns) in a `chat <model>` span with usage."""
    with telemetry.tracing.tracer.start_as_current_span(
        f"chat {model}",
        kind=SpanKind.CLIENT,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": model,
            "gen_ai.request.max_tokens": max_tokens,
        },
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        started = time.perf_counter()
        try:
            result: Any = await pending
        except Exception as exc:
            reason = str(getattr(exc, "reason", type(exc).__name__))
            span.set_attribute("error.type", reason)
            detail = str(getattr(exc, "detail", None) or redact_text(describe(exc)))
            span.set_status(Status(StatusCode.ERROR, detail[:200]))
            metrics.record_model_call(
                model,
                time.perf_counter() - started,
                input_tokens=0,
                output_tokens=0,
                cost=0.0,
                error=reason,
            )
            _log.warning("model_call_failed", model=model, reason=reason, detail=detail)
            raise
        meta = result.message.response_metadata or {}
        finish = meta.get("finish_reason")
        span.set_attributes(
            {
                "gen_ai.usage.input_tokens": result.input_tokens,
                "gen_ai.usage.output_tokens": result.output_tokens,
                "gen_ai.response.model": str(meta.get("model_name") or model),
                "keel.cost_usd": result.cost,
                "keel.tool_calls": len(result.message.tool_calls),
            }
        )
        if finish:
            span.set_attribute("gen_ai.response.finish_reasons", [str(finish)])
        metrics.record_model_call(
            model,
            time.perf_counter() - started,
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            cost=result.cost,
        )
        _log.info(
            "model_call",
            model=model,
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            cost_usd=result.cost,
            tool_calls=[tc["name"] for tc in result.message.tool_calls],
        )
        return result


async def traced_tool_call(telemetry: Telemetry, call: Mapping[str, Any], pending: Awaitable[_T]) -> _T:
    """Await one executor call (`pending`) inside an `execute_tool <name>` span; record its outcome.

    Its cost is the outcome's: what the guards charged (the benchmark's NoToolGuard charges list price)."""
    name = str(call.get("name", ""))
    approved_by = call.get("approved_by")
    with telemetry.tracing.tracer.start_as_current_span(
        f"execute_tool {name}",
        kind=SpanKind.INTERNAL,
        attributes={
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            "gen_ai.tool.call.id": str(call.get("id", "")),
            "gen_ai.tool.type": "function",
            "keel.decision": "approve" if approved_by else "allow",
            "keel.rule": str(call.get("rule", "")),
            "keel.resource": str(call.get("resource", "")),
            **({"keel.approved_by": str(approved_by)} if approved_by else {}),
        },
    ) as span:
        started = time.perf_counter()
        outcome: Any = await pending
        elapsed = time.perf_counter() - started
        status = str(outcome.status)
        cost = 0.0 if status == "replayed" else float(outcome.cost)  # a replay was counted when it ran
        span.set_attributes({"keel.tool.status": status, "keel.cost_usd": cost})
        if status in TOOL_FAILURES:
            span.set_attribute("error.type", status)
            span.set_status(Status(StatusCode.ERROR, f"tool {name} ended {status}"))
        metrics.record_tool_call(name, status, elapsed, cost=cost)
        _log.info(
            "tool_call",
            tool=name,
            tool_call_id=call.get("id"),
            status=status,
            duration_ms=round(elapsed * 1000, 1),
        )
        return outcome
