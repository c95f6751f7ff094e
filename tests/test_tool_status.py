"""Tool outcomes carry a structured status (keel.tool_status): each is reached by a real executor call,
and the tool's circuit breaker counts only `failed` and `timeout`, the tool's own failures.

Why those two: a `refused` call never ran (a guard stopped it), an `invalid` one could not be acted on
(the model's arguments were wrong: the tool is healthy), and a `replayed` one was counted when it ran.
Counting any of them would open the breaker of a healthy tool because of what the model or a guard did.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from pydantic import BaseModel

from keel.context import RunContext
from keel.tool_status import TOOL_FAILURES, TOOL_STATUSES
from keel.tools.registry import default_registry
from keel.tools.spec import ToolInputError, ToolSpec


class _Args(BaseModel):
    how: str


async def _behave(args: _Args, ctx) -> str:
    if args.how == "raise":
        raise RuntimeError("the disk is on fire")
    if args.how == "hang":
        await asyncio.sleep(5)
    if args.how == "bad-input":
        raise ToolInputError("no such thing as 'bad-input'")
    return "done"


FLAKY = ToolSpec(
    name="flaky",
    description="behaves as told",
    args_model=_Args,
    run=_behave,
    resource=lambda a, r, w: "shared:flaky",
    timeout_s=0.2,
)


def _run() -> RunContext:
    return RunContext(
        user_id=f"u-{uuid.uuid4().hex[:8]}", role="user", tenant="default", execution_id=str(uuid.uuid4())
    )


async def _breaker(keel) -> str:
    guards = keel.backends.guards
    return await guards.breakers.state("tool:flaky", guards.breaker)


@pytest.fixture
def limits(tmp_path):
    path = tmp_path / "limits.yaml"
    path.write_text("version: 1\ntools:\n  flaky: {per_user: 6/minute}\n")
    return path


async def test_each_status_is_reached_and_only_failures_open_the_breaker(make_keel, limits):
    registry = default_registry().with_tools(FLAKY)
    async with make_keel([], registry=registry, limits_file=limits, breaker_failure_threshold=2) as keel:
        ex, run, thread = keel.backends.executor, _run(), f"th-{uuid.uuid4().hex}"

        async def call(call_id: str, **args) -> str:
            outcome = await ex.execute(call_id, "flaky", args, run, thread, deadline=time.time() + 30)
            return outcome.status

        seen = [
            await call("c-ok", how="fine"),
            await call("c-ok", how="fine"),  # the same tool_call_id again: its recorded answer
            await call("c-invalid-schema", wrong="field"),
            await call("c-invalid-input", how="bad-input"),
        ]
        assert seen == ["ok", "replayed", "invalid", "invalid"]
        assert await _breaker(keel) == "closed"  # the model's mistakes say nothing of the tool
        seen.append(await call("c-failed", how="raise"))
        assert await _breaker(keel) == "closed"  # one failure, threshold two
        seen.append(await call("c-timeout", how="hang"))
        assert await _breaker(keel) == "open"  # failed + timeout: the tool's own failures
        seen.append(await call("c-refused", how="fine"))  # the open breaker refuses it: nothing ran
        assert seen[-1] == "refused"
        assert set(seen) == set(TOOL_STATUSES)
        rows = {c: (await keel.records.get_tool_result(thread, c)).status for c in ("c-failed", "c-refused")}
        assert rows == {"c-failed": "failed", "c-refused": "refused"}
        assert (await call("c-refused", how="fine")) == "refused"  # replays as what it was, not "error"


async def test_refused_calls_never_open_the_breaker(make_keel, limits):
    registry = default_registry().with_tools(FLAKY)
    async with make_keel([], registry=registry, limits_file=limits, breaker_failure_threshold=1) as keel:
        ex, run, thread = keel.backends.executor, _run(), f"th-{uuid.uuid4().hex}"
        statuses = [
            (
                await ex.execute(f"c{i}", "flaky", {"how": "fine"}, run, thread, deadline=time.time() + 30)
            ).status
            for i in range(9)
        ]
        assert statuses == ["ok"] * 6 + ["refused"] * 3  # the user's window: 6 a minute
        assert await _breaker(keel) == "closed"


def test_the_tool_failures_are_failed_and_timeout():
    assert {"failed", "timeout"} == TOOL_FAILURES
