"""The A/B report's read (`executions` and `feedback`): the part of `Records` that groups executions.

- A group is the rollout arm an execution ran in (`executions.arm`), or its version when it ran without a
  rollout, so two versions run side by side still compare.
- Executions *started* in [since, until] count. Only finished ones (succeeded, terminated, failed) enter
  the metrics; running, awaiting approval and interrupted ones are counted apart, to be reported as left out.
- One read transaction (a REPEATABLE READ snapshot on PostgreSQL), three reads: counts per group and status
  (grouped in SQL), each finished execution's duration, cost and tool lists (lists are summed here), and
  the mean feedback score of each scored finished execution (averaged in SQL over its users).
- Tool failure rate is per tool call: `tools_failed` (calls that ran and failed or timed out) over
  `tools_used + tools_failed` (the lists are disjoint: `tools_used` holds the calls that ended ok), as the
  health summary counts them; refused calls are neither.
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from keel.records.tables import executions, feedback
from keel.records.types import utcnow
from keel.report.ab import ABReport, GroupSample, build_ab_report

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["ABStore", "FINISHED", "DEFAULT_MIN_SAMPLE"]

FINISHED = ("succeeded", "terminated", "failed")
"""The statuses the report counts (of EXECUTION_STATUSES; running, awaiting_approval, interrupted: not)."""
DEFAULT_MIN_SAMPLE = 30
_GROUP = sa.func.coalesce(executions.c.arm, executions.c.version)


class ABStore:
    """`Records`' A/B report (a base class of `Records`, which provides the connections)."""

    if TYPE_CHECKING:

        def _connect(
            self, *, read: bool = False, snapshot: bool = False
        ) -> AbstractAsyncContextManager[AsyncConnection]: ...

    async def ab_samples(self, *, since: datetime, until: datetime | None = None) -> list[GroupSample]:
        """One `GroupSample` per group with an execution started in [since, until] (until: now)."""
        until = until or utcnow()
        window = (executions.c.started_at >= since, executions.c.started_at <= until)
        finished = executions.c.status.in_(FINISHED)
        is_arm = executions.c.arm.is_not(None)
        counts = (
            sa.select(
                _GROUP.label("g"), is_arm.label("is_arm"), executions.c.status, sa.func.count().label("n")
            )
            .where(*window)
            .group_by(_GROUP, is_arm, executions.c.status)
        )
        rows = sa.select(
            _GROUP.label("g"),
            executions.c.duration_ms,
            executions.c.cost,
            executions.c.tools_used,
            executions.c.tools_failed,
        ).where(*window, finished)
        per_run = (
            sa.select(_GROUP.label("g"), sa.func.avg(feedback.c.score).label("score"))
            .select_from(feedback.join(executions, feedback.c.execution_id == executions.c.execution_id))
            .where(*window, finished)
            .group_by(feedback.c.execution_id, _GROUP)
        )
        async with self._connect(read=True, snapshot=True) as conn:
            count_rows = (await conn.execute(counts)).all()
            run_rows = (await conn.execute(rows)).all()
            score_rows = (await conn.execute(per_run)).all()

        acc: dict[str, dict[str, Any]] = defaultdict(
            lambda: {
                "kind": "version",
                "executions": 0,
                "unfinished": 0,
                "succeeded": 0,
                "finished": 0,
                "durations": [],
                "costs": [],
                "calls": 0,
                "failures": 0,
                "scores": [],
            }
        )
        for r in count_rows:
            a = acc[r.g]
            if r.is_arm:
                a["kind"] = "arm"
            a["executions"] += r.n
            a["finished" if r.status in FINISHED else "unfinished"] += r.n
            if r.status == "succeeded":
                a["succeeded"] += r.n
        for r in run_rows:
            a = acc[r.g]
            if r.duration_ms is not None:
                a["durations"].append(r.duration_ms / 1000)
            a["costs"].append(float(r.cost))
            a["failures"] += len(r.tools_failed or [])
            a["calls"] += len(r.tools_used or []) + len(r.tools_failed or [])
        for r in score_rows:
            acc[r.g]["scores"].append(float(r.score))
        return [
            GroupSample(
                name=name,
                kind=a["kind"],
                executions=a["executions"],
                unfinished=a["unfinished"],
                succeeded=a["succeeded"],
                finished=a["finished"],
                durations_s=tuple(a["durations"]),
                costs=tuple(a["costs"]),
                tool_calls=a["calls"],
                tool_failures=a["failures"],
                feedback_scores=tuple(a["scores"]),
            )
            for name, a in sorted(acc.items())
        ]

    async def ab_report(
        self,
        *,
        since: timedelta | datetime = timedelta(days=7),
        until: datetime | None = None,
        baseline: str | None = None,
        rollout_stable: str | None = None,
        min_sample: int = DEFAULT_MIN_SAMPLE,
    ) -> ABReport:
        """Compare the groups of executions started since `since` (a datetime, or a span back from `until`,
        default now) with the baseline: `baseline` when given (KeyError when it did not run in the window),
        else `rollout_stable` (the caller's rollout stable arm) when it ran, else the group with the most
        executions. See keel.report.ab for the metrics and keel.report.stats for the intervals."""
        until = until or utcnow()
        try:
            start = until - since if isinstance(since, timedelta) else since
        except OverflowError:
            raise ValueError(f"the window {since} reaches back before the year 1") from None
        samples = await self.ab_samples(since=start, until=until)
        return build_ab_report(
            samples,
            since=start,
            until=until,
            min_sample=min_sample,
            baseline=baseline,
            rollout_stable=rollout_stable,
        )
