"""A drill worker process: drives a list of runs to their end, and may die (os._exit) at a kill point.

Run as ``python tests/reliability/_worker.py '<json plan>'``. The plan names the settings, the jobs
(thread, user, role, task) and at most one kill point ``{"point": ..., "nth": n}``: the process dies
the n-th time it reaches that point. Every action prints one JSON line, so the parent can count
resumes and unhandled errors. Each job is taken from wherever a previous (killed) worker left it:
not started → run; crashed mid-step → resume; paused → approve; finished → nothing.

Kill points: ``model`` (inside a decide model call, after its reservation), ``tool_before`` /
``tool_inside`` (send_email, before its outbox write / after it, inside the open transaction),
``tool_after`` (the tool call committed, its step not checkpointed yet), ``checkpoint_before`` /
``checkpoint_after`` (around a checkpoint write), ``paused`` (a run just paused for approval),
``decided`` (an approval decision recorded, the run not resumed yet).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from _drill import email_turn  # noqa: E402
from _runs import HANDLED  # noqa: E402
from langchain_core.messages import AIMessage, BaseMessage  # noqa: E402

from keel.app.service import Keel  # noqa: E402
from keel.settings import Settings  # noqa: E402
from keel.testing.fake_model import FakeChatModel  # noqa: E402
from keel.tools.registry import default_registry  # noqa: E402

KILLED = 137


class KillSwitch:
    """Dies (no clean-up, like kill -9) the n-th time the chosen point is reached."""

    def __init__(self, plan: dict[str, Any] | None) -> None:
        self.point = plan["point"] if plan else None
        self.nth = int(plan["nth"]) if plan else 0
        self.seen = 0

    def at(self, point: str) -> None:
        if point != self.point:
            return
        self.seen += 1
        if self.seen == self.nth:
            emit(event="kill", point=point)
            os._exit(KILLED)


def emit(**fields: Any) -> None:
    print(json.dumps({"drill": 1, **fields}), flush=True)


def _answer(kill: KillSwitch):
    def turn(messages: list[BaseMessage]) -> AIMessage:
        kill.at("model")
        return email_turn(messages)

    return turn


def _registry(kill: KillSwitch):
    registry = default_registry()
    email = registry.get("send_email")

    async def run(args: Any, ctx: Any) -> str:
        kill.at("tool_before")
        out = await email.run(args, ctx)
        kill.at("tool_inside")
        return out

    others = [spec for spec in registry if spec.name != "send_email"]
    return type(registry)([*others, dataclasses.replace(email, run=run)])


def _patch(keel: Keel, kill: KillSwitch) -> None:
    saver = keel.graph.checkpointer
    put = saver.aput  # type: ignore[union-attr]

    async def aput(*args: Any, **kwargs: Any) -> Any:
        kill.at("checkpoint_before")
        out = await put(*args, **kwargs)
        kill.at("checkpoint_after")
        return out

    saver.aput = aput  # type: ignore[union-attr,method-assign]
    execute = keel.backends.executor.execute

    async def execute_then(*args: Any, **kwargs: Any) -> Any:
        out = await execute(*args, **kwargs)
        kill.at("tool_after")
        return out

    keel.backends.executor.execute = execute_then  # type: ignore[method-assign]
    decide = keel.records.decide_approval

    async def decide_then(*args: Any, **kwargs: Any) -> Any:
        out = await decide(*args, **kwargs)
        kill.at("decided")
        return out

    keel.records.decide_approval = decide_then  # type: ignore[method-assign]


async def _step(keel: Keel, job: dict[str, Any], kill: KillSwitch) -> str | None:
    """One action on a job; the status it ended in, or None when the job was already finished."""
    thread = job["thread_id"]
    prior = await keel.records.latest_execution(thread)
    if prior is None:
        out = await keel.run(job["task"], user_id=job["user"], role=job["role"], thread_id=thread)
        action = "run"
    elif prior.status == "awaiting_approval":
        pending = [a for a in await keel.pending_approvals() if a.thread_id == thread]
        if not pending:
            out = await keel.resume(thread)  # the decision was recorded: continue with it
            action = "resume"
        else:
            out = await keel.decide(pending[0].approval_id, "approve", approver="ops", approver_role="admin")
            action = "decide"
    else:
        snapshot = await keel.graph.aget_state({"configurable": {"thread_id": thread}})
        if not snapshot.next and prior.status != "running":
            return None
        out = await keel.resume(thread)
        action = "resume"
    emit(event=action, thread=thread, status=out.status, reason=out.terminated_reason)
    if out.status == "awaiting_approval":
        kill.at("paused")
    return out.status


async def main(plan: dict[str, Any]) -> None:
    kill = KillSwitch(plan.get("kill"))
    settings = Settings(**plan["settings"])
    model = FakeChatModel([_answer(kill)] * 1000)
    async with Keel.open(settings, model=model, model_name="fake-model", registry=_registry(kill)) as keel:
        _patch(keel, kill)
        for job in plan["jobs"]:
            for _ in range(4):  # run → paused → approved → done, at most
                try:
                    status = await _step(keel, job, kill)
                except HANDLED as exc:
                    emit(event="refused", thread=job["thread_id"], error=f"{type(exc).__name__}: {exc}")
                    break
                except Exception as exc:  # noqa: BLE001 - counted by the parent as an unhandled error
                    emit(event="unhandled", thread=job["thread_id"], error=f"{type(exc).__name__}: {exc}")
                    break
                if status in (None, "succeeded", "terminated", "failed"):
                    break
    emit(event="done")


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
