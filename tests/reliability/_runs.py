"""Drive drill jobs in this process: run, approve when paused, resume when asked; count what escapes."""

from __future__ import annotations

import random
import re
from collections.abc import Awaitable, Callable
from typing import Any

from _drill import Job, Totals, email_turn
from langchain_core.messages import AIMessage, BaseMessage

from keel.app.service import Keel, RunOutcome
from keel.errors import KeelError
from keel.guards.errors import GuardUnavailable
from keel.hotstate import HotStateUnavailable
from keel.records import RecordsUnavailable
from keel.stop_reasons import STOP_REASONS
from keel.testing.fake_model import FakeChatModel
from keel.testing.openai_server import Reply

__all__ = ["HANDLED", "REASONS", "drive_job", "outage_model", "respond"]

HANDLED = (KeelError, RecordsUnavailable, HotStateUnavailable, GuardUnavailable)
"""Errors keel reports in one clear line; anything else escaping a run is an unhandled error."""

REASONS = frozenset(name for name, row in STOP_REASONS.items() if row.outcome != "refused")
"""terminated_reason values a run can be terminated with (keel/stop_reasons.py)."""


def respond(body: dict[str, Any]) -> Reply:
    """The fake OpenAI server's script: a plan, then `email_turn` (see _worker.py) on OpenAI messages."""
    messages = body.get("messages", [])
    if not body.get("tools"):
        return Reply(content="1. email the report")
    tools = [m for m in messages if m.get("role") == "tool"]
    if any(str(m.get("content", "")).startswith("queued email") for m in tools):
        return Reply(content="Sent.")
    task = next(m["content"] for m in messages if m.get("role") == "user")
    task = task if isinstance(task, str) else " ".join(p.get("text", "") for p in task)
    n = re.search(r"report (\d+)", task).group(1)  # type: ignore[union-attr]
    args = {"to": f"team{n}@example.com", "subject": f"report {n}", "body": "ok"}
    return Reply(tool_calls=[(f"mail-{n}-{len(tools) + 1}", "send_email", args)])


async def drive_job(
    keel: Keel,
    job: Job,
    totals: Totals,
    *,
    attempts: int = 4,
    after_step: Callable[[], Awaitable[None]] | None = None,
    until_succeeded: bool = False,
) -> RunOutcome | None:
    """Take `job` from where it is to an end; an error keel did not explain is counted and noted.

    `after_step` runs after every request (a drill restarts the store it killed there);
    `until_succeeded` resumes a terminated run too (as a user does once the outage is over).
    """
    out: RunOutcome | None = None
    for _ in range(attempts):
        if after_step is not None:
            await after_step()
        try:
            prior = await keel.records.latest_execution(job.thread_id)
            if prior is None:
                out = await keel.run(job.task, user_id=job.user, role=job.role, thread_id=job.thread_id)
            elif prior.status == "awaiting_approval":
                pending = [a for a in await keel.pending_approvals() if a.thread_id == job.thread_id]
                if pending:
                    out = await keel.decide(
                        pending[0].approval_id, "approve", approver="ops", approver_role="admin"
                    )
                else:
                    out = await keel.resume(job.thread_id)
            else:
                out = await keel.resume(job.thread_id)
                totals.resumed += 1
        except HANDLED as exc:
            totals.notes.append(f"{job.thread_id}: refused: {type(exc).__name__}: {exc}")
            continue
        except Exception as exc:  # noqa: BLE001 - counted: the drill's point is that there are none
            kind = f"{type(exc).__module__}.{type(exc).__name__}"
            totals.note("unhandled_errors", f"{job.thread_id}: {kind}: {' '.join(str(exc).split())[:160]}")
            continue  # counted; a user would try again, so the drill does too
        if out.status == "terminated" and out.terminated_reason not in REASONS:
            totals.note("unhandled_errors", f"{job.thread_id}: terminated without a clear reason")
        if out.status == "succeeded" or (out.status == "terminated" and not until_succeeded):
            return out
    return out


def outage_model(rng: random.Random, share: float, outage: Callable[[], None]) -> FakeChatModel:
    """The scripted agent, whose model calls set off `outage` in `share` of them (seeded)."""

    def turn(messages: list[BaseMessage]) -> AIMessage:
        if rng.random() < share:
            outage()
        return email_turn(messages)

    return FakeChatModel([turn] * 1000)
