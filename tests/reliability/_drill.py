"""The drill harness: jobs, the invariant check after a drill, and the totals table.

A drill drives many runs through faults (processes killed, stores stopped, a misbehaving model) until
each run ends, then checks what a user would notice. Zero is tolerated for every column but the first
three: a duplicate effect, an effect or tool result without its audit row, a ledger that disagrees with
its entries or with the costs the executions recorded, an error that escaped keel unexplained, a run
that never ended, or an execution left `running`.
"""

from __future__ import annotations

import os
import random
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from keel.app.service import Keel
from keel.settings import Settings
from keel.testing.fake_model import FakeChatModel, tool_call

__all__ = ["Job", "Totals", "check", "jobs", "drill_seed", "email_turn"]

_CENT = Decimal("0.00000001")


def drill_seed(default: int) -> int:
    """The drill's seed: KEEL_DRILL_SEED when set (to replay a failure), else `default`."""
    return int(os.environ.get("KEEL_DRILL_SEED", default))


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """One run a drill drives to its end: email report `n`; role `user` pauses for approval first."""

    n: int
    user: str
    role: str
    prefix: str = "t"

    @property
    def thread_id(self) -> str:
        return f"{self.prefix}-{self.n:04d}"

    @property
    def task(self) -> str:
        return f"email report {self.n} to the team"

    def as_plan(self) -> dict[str, Any]:
        return {"thread_id": self.thread_id, "user": self.user, "role": self.role, "task": self.task}


def jobs(count: int, rng: random.Random, *, prefix: str = "t", approval_share: float = 0.3) -> list[Job]:
    """`count` jobs over three users; about `approval_share` of them pause for approval."""
    return [
        Job(
            n=i,
            user=f"{prefix}-user{i % 3}",
            role="user" if rng.random() < approval_share else "admin",
            prefix=prefix,
        )
        for i in range(1, count + 1)
    ]


@dataclass(slots=True)
class Totals:
    """What a drill counted. Every column after `faults` must be zero."""

    name: str
    seed: int
    runs: int = 0
    resumed: int = 0
    faults: int = 0
    """Faults injected: processes killed, store outages, model faults."""
    duplicates: int = 0
    lost_audit_rows: int = 0
    ledger_mismatches: int = 0
    """Users whose ledger spend or reserved total disagrees with its own entries."""
    reservations_held: int = 0
    """Reservations still open after every run ended (money held for calls nobody is making)."""
    cost_mismatches: int = 0
    """Users whose ledger spend differs from the sum of the costs their executions recorded."""
    unhandled_errors: int = 0
    stuck: int = 0
    """Runs that never reached an end (succeeded or terminated) although the drill kept resuming them."""
    left_running: int = 0
    notes: list[str] = field(default_factory=list)
    """One line per problem found, for the assertion message; each starts with its column's name."""

    def note(self, column: str, text: str) -> None:
        """Count one problem in `column` and say what it was."""
        setattr(self, column, getattr(self, column) + 1)
        self.notes.append(f"{column}: {text}")

    def bad(self) -> int:
        """The sum of the zero-tolerance columns."""
        return (
            self.duplicates
            + self.lost_audit_rows
            + self.ledger_mismatches
            + self.reservations_held
            + self.cost_mismatches
            + self.unhandled_errors
            + self.stuck
            + self.left_running
        )

    def table(self) -> str:
        """The totals as a small text table (printed with -s and put in assertion messages)."""
        row = {k: v for k, v in asdict(self).items() if k != "notes"}
        keys = list(row)
        widths = [max(len(k), len(str(row[k]))) for k in keys]
        head = " | ".join(k.ljust(w) for k, w in zip(keys, widths, strict=True))
        line = " | ".join(str(row[k]).ljust(w) for k, w in zip(keys, widths, strict=True))
        notes = "".join(f"\n  - {n}" for n in self.notes[:30])
        return f"\n{head}\n{'-' * len(head)}\n{line}{notes}\n(replay with KEEL_DRILL_SEED={self.seed})"


def email_turn(messages: list[BaseMessage]) -> AIMessage:
    """The scripted agent: email the report named in the task until one email went out, then say so.

    A retry after a failed call gets a new call id (as a real model's would); the same history
    always gives the same id, so a re-asked turn after a crash asks for the same call.
    """
    tool_messages = [m for m in messages if isinstance(m, ToolMessage)]
    if any(m.status == "success" for m in tool_messages):
        return AIMessage(content="Sent.")
    task = next(m.text for m in messages if isinstance(m, HumanMessage))
    n = re.search(r"report (\d+)", task).group(1)  # type: ignore[union-attr]
    return tool_call(
        "send_email",
        call_id=f"mail-{n}-{len(tool_messages) + 1}",
        to=f"team{n}@example.com",
        subject=f"report {n}",
        body="ok",
    )


def _money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(_CENT)


async def check(settings: Settings, drill_jobs: list[Job], totals: Totals, *, finished: bool = True) -> None:
    """Count duplicates, lost audit rows, ledger mismatches and executions left running into `totals`.

    `finished`: every job must have ended (succeeded or terminated); one that did not counts as stuck.
    """
    totals.runs = len(drill_jobs)
    async with Keel.open(settings, model=FakeChatModel([]), model_name="fake-model") as keel:
        records = keel.records
        threads = {job.thread_id for job in drill_jobs}
        sent = [m for m in await records.list_outbox() if m.thread_id in threads]
        outbox = Counter((m.thread_id, m.tool_call_id) for m in sent)
        for (thread, call_id), count in outbox.items():
            if count > 1:
                totals.note("duplicates", f"{thread} {call_id}: {count} outbox rows")
        users = sorted({job.user for job in drill_jobs})
        for job in drill_jobs:
            await _check_job(keel, job, outbox, totals, finished=finished)
        for user in users:
            await _check_ledger(keel, user, totals)


async def _check_job(keel: Keel, job: Job, outbox: Counter, totals: Totals, *, finished: bool) -> None:
    records = keel.records
    latest = await records.latest_execution(job.thread_id)
    if latest is None:
        if finished:
            totals.note("stuck", f"{job.thread_id}: never started")
        return
    if latest.status == "running":
        totals.note("left_running", f"{job.thread_id}: execution {latest.execution_id} left running")
    if finished and latest.status not in ("succeeded", "terminated"):
        totals.note("stuck", f"{job.thread_id}: ended in {latest.status}")
    audit = [
        r for r in await records.audit_for(thread_id=job.thread_id, limit=10_000) if r.event == "tool_call"
    ]
    sent = [m for m in await records.list_outbox() if m.thread_id == job.thread_id]
    if len(sent) > 1:
        totals.note("duplicates", f"{job.thread_id}: {len(sent)} emails sent for one task")
    if finished and latest.status == "succeeded" and latest.terminated_reason is None and not sent:
        totals.note("stuck", f"{job.thread_id}: succeeded without sending its email")
    for call_id in sorted({r.tool_call_id for r in audit} | {m.tool_call_id for m in sent}):
        result = await records.get_tool_result(job.thread_id, call_id)
        if result is None:
            if outbox.get((job.thread_id, call_id)):
                totals.note("lost_audit_rows", f"{call_id}: outbox row without its tool result")
            continue
        if result.status == "ok" and not outbox.get((job.thread_id, call_id)):
            totals.note("lost_audit_rows", f"{call_id}: tool result ok but no outbox row")
        rows = [r for r in audit if r.tool_call_id == call_id and r.status == result.status]
        if len(rows) != 1:
            column = "lost_audit_rows" if not rows else "duplicates"
            totals.note(column, f"{call_id}: {len(rows)} audit rows for its {result.status} result")


async def _check_ledger(keel: Keel, user: str, totals: Totals) -> None:
    ledger = keel.backends.guards.ledger  # type: ignore[union-attr]
    status = await ledger.status(user)
    entries = await ledger.history(user, limit=100_000)
    settled = sum((e.actual or Decimal(0) for e in entries if e.status == "settled"), Decimal(0))
    held = [e for e in entries if e.status == "reserved"]
    executions = await keel.records.list_executions(user_id=user, limit=100_000)
    recorded = sum((_money(e.cost) for e in executions), Decimal(0))
    problems = []
    if _money(status.spent) != _money(settled):
        problems.append(f"spent {status.spent} != settled entries {settled}")
    open_total = sum((e.estimate for e in held), Decimal(0))
    if _money(status.reserved) != _money(open_total):
        problems.append(f"reserved {status.reserved} != open entries {open_total}")
    if problems:
        totals.note("ledger_mismatches", f"ledger of {user}: " + "; ".join(problems))
    for entry in held:
        what = f"{entry.kind} {entry.name} of {entry.thread_id}"
        totals.note("reservations_held", f"{user}: {what} still reserved")
    if _money(status.spent) != recorded:
        totals.note("cost_mismatches", f"{user}: ledger spent {status.spent} != executions' costs {recorded}")
