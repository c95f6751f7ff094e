"""Helpers the nodes share: the thread id, a bounded model call with usage accounting (and what it needs)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import Runnable, RunnableConfig
from sqlalchemy.ext.asyncio import AsyncConnection

from keel.context import RunContext
from keel.costs import PriceTable
from keel.errors import describe
from keel.guards import Guards, ModelGate, NoGuards, failure_of
from keel.guards.errors import STORE_ERRORS
from keel.hotstate.model_cache import ModelResponseCache
from keel.observability.instrument import traced_model_call
from keel.observability.telemetry import Telemetry
from keel.redaction import redact_text
from keel.settings import Settings

__all__ = [
    "thread_id_of",
    "ModelCalls",
    "bounded",
    "ModelCall",
    "call_model",
    "ModelCallFailed",
    "usage_update",
    "overrun_reason",
    "settle_owed",
]


def thread_id_of(config: RunnableConfig) -> str:
    """The checkpoint thread of this run."""
    thread = (config.get("configurable") or {}).get("thread_id")
    if not thread:
        raise ValueError("keel runs need a thread_id in config['configurable']")
    return str(thread)


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelCalls:
    """What a node's model call uses: the limits in the settings, the price table, the guards (budget and
    breaker) and the telemetry; `build_graph` hands one to the nodes that call the model."""

    settings: Settings
    prices: PriceTable
    guards: Guards | NoGuards
    """keel's guards (budget and breaker), or the benchmark's NoGuards."""
    telemetry: Telemetry
    model_name: str
    """The primary model's name (the default of `call_model`)."""
    instructions: str | None = None
    """The project's system instructions (keel.yaml `agent.prompt`); None: keel's built-in ones."""
    providers: Mapping[str, str] = field(default_factory=dict)
    """Each model's provider by name (a fallback may be another provider); the settings' when absent."""
    cache: ModelResponseCache | None = None
    """The model-response cache decide asks before a call (nodes/_model_cache.py); None: off."""


def bounded(calls: ModelCalls, model: Runnable) -> Runnable:
    """`model` with the output bound every call must carry, bound once when a node is built.

    The reservation's bound holds only if the provider is told it (ChatOpenAI sends `max_tokens` as
    max_completion_tokens), so every model a node calls goes through here."""
    return model.bind(max_tokens=calls.settings.max_output_tokens)


class ModelCallFailed(Exception):
    """The model did not answer: `reason` is `timeout` (run deadline), `llm_unavailable` or a guard's
    reason; `detail` names the cause (`APIConnectionError: … (ConnectError: …)`, `timeout after 5 s`)."""

    def __init__(self, reason: str, detail: str) -> None:
        # The detail goes to the execution record, the log and the user's answer: redacted once, here.
        detail = redact_text(detail)
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelCall:
    """A model answer and what it used."""

    message: AIMessage
    input_tokens: int
    output_tokens: int
    cost: float
    overrun: str | None = None
    """Set when the provider reported more than the reservation's bound: why the run must stop."""
    owed: tuple[dict[str, str], ...] = ()
    """This call's charge, kept in the run's state until the run's next records transaction settles it
    (what earlier calls owed was settled in this call's reservation)."""
    cached: bool = False
    """Served from the model-response cache: no call was made, nothing reserved or charged."""


async def call_model(
    b: ModelCalls,
    model: Runnable,
    messages: Sequence[BaseMessage],
    state: Mapping[str, Any],
    config: RunnableConfig,
    *,
    run: RunContext,
    model_name: str | None = None,
) -> ModelCall:
    """Call `model` (built with `bounded`) within the model timeout and the run deadline; price its usage
    (in a `chat` span)."""
    name = model_name or b.model_name
    return await traced_model_call(
        b.telemetry,
        _call_model(b, model, messages, state, config, run=run, model_name=name),
        model=name,
        provider=b.providers.get(name, b.settings.model_provider),
        max_tokens=b.settings.max_output_tokens,
    )


async def _call_model(
    b: ModelCalls,
    model: Runnable,
    messages: Sequence[BaseMessage],
    state: Mapping[str, Any],
    config: RunnableConfig,
    *,
    run: RunContext,
    model_name: str | None = None,
) -> ModelCall:
    """Call the model within the model timeout and the run deadline; price its usage.

    The model's breaker admits the call and the budget reserves its estimate first (a refusal raises
    ModelCallFailed with the guard's reason); the reservation is settled to the actual cost after,
    released on failure or cancellation.
    """
    name = model_name or b.model_name
    remaining = state.get("deadline", float("inf")) - time.time()
    timeout = min(b.settings.model_timeout_s, remaining)
    if timeout <= 0:
        raise ModelCallFailed("timeout", "the run deadline passed before the model call")
    estimate_tools = getattr(model, "kwargs", {}).get("tools", ())
    owed = state.get("owed_charges") or []  # settled in the reservation's transaction
    estimate = b.guards.estimate(name, messages, estimate_tools)
    try:
        async with b.guards.model_call(run, thread_id_of(config), name, estimate, owed) as gate:
            call = await _invoke(b, model, messages, config, name, (timeout, remaining), gate)
    except ModelCallFailed:
        raise
    except Exception as exc:  # noqa: BLE001 - guard refusals: BudgetExceeded, CircuitOpen, store down
        failure = failure_of(exc)
        raise ModelCallFailed(failure.reason, failure.message) from exc
    stop = _overrun_stop(b, call, estimate) if gate.overrun else None
    return replace(call, overrun=stop, owed=(gate.owed,) if gate.owed is not None else ())


def _overrun_stop(b: ModelCalls, call: ModelCall, estimate: Decimal) -> str:
    """Why the run stops after a call that cost more than its reservation (the provider ignored
    max_tokens): the next call's bound cannot be trusted either."""
    return (
        f"the model reported {call.output_tokens} output tokens against the max_tokens bound of "
        f"{b.settings.max_output_tokens}: ${call.cost:.6f} was charged where ${estimate:.6f} was "
        "reserved, so the run stopped before another call"
    )


def overrun_reason(b: ModelCalls, state: Mapping[str, Any], call: ModelCall) -> str:
    """The terminated_reason after an overrun: the run's cap when the truth passed it, else the budget."""
    spent = state.get("run_cost", 0.0) + call.cost
    return "run_cost_cap" if spent > b.settings.run_cost_cap else "budget_exceeded"


async def _invoke(
    b: ModelCalls,
    model: Runnable,
    messages: Sequence[BaseMessage],
    config: RunnableConfig,
    name: str,
    limits: tuple[float, float],
    gate: ModelGate,
) -> ModelCall:
    """One model request within `limits` = (timeout, time left in the run); the gate learns the outcome."""
    timeout, remaining = limits
    try:
        async with asyncio.timeout(timeout):
            message = await model.ainvoke(list(messages), config)
    except TimeoutError:
        reason = "timeout" if remaining <= b.settings.model_timeout_s else "llm_unavailable"
        if reason == "llm_unavailable":
            gate.fault()
        raise ModelCallFailed(reason, f"timeout after {timeout:.3g} s") from None
    except STORE_ERRORS as exc:
        # A store behind a callback (records, ledger, hot state) failed or its pool ran dry while the
        # model was being called: a guard could not work, the model is not to blame (no fault, no fallback).
        raise ModelCallFailed("guard_unavailable", describe(exc)) from exc
    except Exception as exc:  # noqa: BLE001 - any provider error means the model is unavailable
        gate.fault()
        raise ModelCallFailed("llm_unavailable", describe(exc)) from exc
    if not isinstance(message, AIMessage):
        gate.fault()
        raise ModelCallFailed("llm_unavailable", f"the model returned {type(message).__name__}")
    usage = message.usage_metadata or {}
    inp, out = int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))
    cost = b.prices.model_actual(name, inp, out)
    gate.settle(cost)
    return ModelCall(message=message, input_tokens=inp, output_tokens=out, cost=float(cost))


def usage_update(state: Mapping[str, Any], call: ModelCall) -> dict[str, Any]:
    """State fields after one model call (charges still owed to the ledger travel in the checkpoint)."""
    return {
        "input_tokens": state.get("input_tokens", 0) + call.input_tokens,
        "output_tokens": state.get("output_tokens", 0) + call.output_tokens,
        "run_cost": state.get("run_cost", 0.0) + call.cost,
        "owed_charges": list(call.owed),
        "cached_model_calls": state.get("cached_model_calls", 0) + int(call.cached),
    }


async def settle_owed(
    guards: Guards | NoGuards, state: Mapping[str, Any], *, conn: AsyncConnection
) -> dict[str, Any]:
    """Charge what earlier model calls still owe the ledger inside `conn`, the step's transaction; the
    state update clears them (they commit with the step, or the step fails and they stay owed)."""
    if not (owed := state.get("owed_charges")):
        return {}
    await guards.settle_owed(owed, conn=conn)
    return {"owed_charges": []}
