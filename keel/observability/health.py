"""Service health over the records database: the seed's `get_agent_health`, with thresholds from settings.

Over the executions *started* in the window: total executions, success rate (succeeded among finished:
succeeded, terminated, failed), average and p95 duration of finished ones (p95 by nearest rank), tool
failure rate (tool calls that ran and failed or timed out, among all that ran, from each row's
`tools_used` and `tools_failed`; calls refused by validation, policy or an approver are not tool failures
and are recorded apart in `tools_refused`), and cost.
Runs still running or awaiting approval count in the total only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa

from keel.records import utcnow
from keel.records.tables import executions

if TYPE_CHECKING:
    from keel.records import Records
    from keel.settings import Settings

__all__ = ["HealthReport", "HealthThresholds", "compute_health", "parse_window", "p95"]

Status = Literal["healthy", "degraded", "unhealthy"]
_FINISHED = ("succeeded", "terminated", "failed")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthThresholds:
    """Where degraded and unhealthy begin."""

    success_degraded: float = 0.95
    success_unhealthy: float = 0.80
    tool_failure_degraded: float = 0.10
    tool_failure_unhealthy: float = 0.30
    p95_degraded_s: float = 60.0
    p95_unhealthy_s: float = 180.0

    @classmethod
    def from_settings(cls, s: Settings) -> HealthThresholds:
        return cls(
            success_degraded=s.health_success_degraded,
            success_unhealthy=s.health_success_unhealthy,
            tool_failure_degraded=s.health_tool_failure_degraded,
            tool_failure_unhealthy=s.health_tool_failure_unhealthy,
            p95_degraded_s=s.health_p95_degraded_s,
            p95_unhealthy_s=s.health_p95_unhealthy_s,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthReport:
    """Health figures over a window, and the verdict with its reasons."""

    status: Status
    window_s: float
    since: datetime
    total_executions: int
    finished_executions: int
    succeeded: int
    success_rate: float | None
    avg_duration_s: float | None
    p95_duration_s: float | None
    tool_calls: int
    tool_failures: int
    tool_failure_rate: float | None
    cost_usd: Decimal
    input_tokens: int = 0
    output_tokens: int = 0
    reasons: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly (the `GET /keel/health` body)."""
        return {
            "status": self.status,
            "window_s": self.window_s,
            "since": self.since.isoformat(),
            "total_executions": self.total_executions,
            "finished_executions": self.finished_executions,
            "succeeded": self.succeeded,
            "success_rate": self.success_rate,
            "avg_duration_s": self.avg_duration_s,
            "p95_duration_s": self.p95_duration_s,
            "tool_calls": self.tool_calls,
            "tool_failures": self.tool_failures,
            "tool_failure_rate": self.tool_failure_rate,
            "cost_usd": f"{self.cost_usd:f}",
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "reasons": list(self.reasons),
        }


def parse_window(text: str) -> timedelta:
    """`90s`, `60m`, `24h`, `7d` (a bare number is minutes)."""
    raw = text.strip().lower()
    unit = raw[-1] if raw and raw[-1] in _UNITS else "m"
    number = raw[:-1] if raw and raw[-1] in _UNITS else raw
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"invalid window {text!r}: use a number with s, m, h or d, e.g. 60m") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"invalid window {text!r}: it must be positive")
    return timedelta(seconds=value * _UNITS[unit])


def p95(values: list[float]) -> float | None:
    """The 95th percentile by nearest rank (the smallest value with 95% of values at or below it)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def _verdict(r: dict[str, Any], t: HealthThresholds) -> tuple[Status, tuple[str, ...]]:
    bad: list[str] = []
    worse: list[str] = []
    checks = [
        ("success rate", r["success_rate"], t.success_unhealthy, t.success_degraded, "below"),
        (
            "tool failure rate",
            r["tool_failure_rate"],
            t.tool_failure_unhealthy,
            t.tool_failure_degraded,
            "above",
        ),
        ("p95 duration (s)", r["p95_duration_s"], t.p95_unhealthy_s, t.p95_degraded_s, "above"),
    ]
    for label, value, unhealthy, degraded, side in checks:
        if value is None:
            continue

        def beyond(limit: float, value: float = value, side: str = side) -> bool:
            return value < limit if side == "below" else value > limit

        if beyond(unhealthy):
            worse.append(f"{label} {value:.3g} is {side} {unhealthy:g}")
        elif beyond(degraded):
            bad.append(f"{label} {value:.3g} is {side} {degraded:g}")
    if worse:
        return "unhealthy", tuple(worse + bad)
    return ("degraded", tuple(bad)) if bad else ("healthy", ())


async def compute_health(
    records: Records,
    *,
    window: timedelta,
    thresholds: HealthThresholds | None = None,
    now: datetime | None = None,
) -> HealthReport:
    """Health of the executions started in the last `window` (see the module docstring)."""
    if window.total_seconds() <= 0:
        raise ValueError("the health window must be positive")
    thresholds = thresholds or HealthThresholds()
    until = now or utcnow()
    since = until - window
    query = sa.select(
        executions.c.status,
        executions.c.succeeded,
        executions.c.duration_ms,
        executions.c.cost,
        executions.c.input_tokens,
        executions.c.output_tokens,
        executions.c.tools_used,
        executions.c.tools_failed,
    ).where(executions.c.started_at >= since, executions.c.started_at <= until)
    # keel_read_only: a plain BEGIN on SQLite (Records takes the write lock otherwise).
    async with records.engine.execution_options(keel_read_only=True).connect() as conn:
        rows = (await conn.execute(query)).all()
    finished = [r for r in rows if r.status in _FINISHED]
    ok = sum(1 for r in finished if r.status == "succeeded")
    durations = [r.duration_ms / 1000 for r in finished if r.duration_ms is not None]
    failures = sum(len(r.tools_failed or []) for r in rows)
    calls = failures + sum(len(r.tools_used or []) for r in rows)
    figures: dict[str, Any] = {
        "success_rate": ok / len(finished) if finished else None,
        "tool_failure_rate": failures / calls if calls else None,
        "p95_duration_s": p95(durations),
    }
    status, reasons = _verdict(figures, thresholds)
    if not finished:
        reasons = ("no finished executions in the window",)
    return HealthReport(
        status=status,
        window_s=window.total_seconds(),
        since=since,
        total_executions=len(rows),
        finished_executions=len(finished),
        succeeded=ok,
        success_rate=figures["success_rate"],
        avg_duration_s=sum(durations) / len(durations) if durations else None,
        p95_duration_s=figures["p95_duration_s"],
        tool_calls=calls,
        tool_failures=failures,
        tool_failure_rate=figures["tool_failure_rate"],
        cost_usd=sum((Decimal(r.cost) for r in rows), Decimal("0")).quantize(Decimal("0.00000001")),
        input_tokens=sum(r.input_tokens or 0 for r in rows),
        output_tokens=sum(r.output_tokens or 0 for r in rows),
        reasons=reasons,
    )
