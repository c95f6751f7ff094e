"""The /keel/health report: the observability engine's when it is installed, else a minimal one."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from keel.records import Records

__all__ = ["health_report"]


async def health_report(records: Records, *, window_s: int) -> dict[str, Any]:
    """Health over the last `window_s` seconds, as JSON."""
    try:
        from keel.observability.health import compute_health
    except ImportError:
        return await _minimal(records, window_s)
    report = await compute_health(records, window=timedelta(seconds=window_s))
    return report.as_dict() if hasattr(report, "as_dict") else dict(report)


async def _minimal(records: Records, window_s: int) -> dict[str, Any]:
    """Records reachable, executions by status in the window, pending approvals."""
    await records.ping()
    since = datetime.now(UTC) - timedelta(seconds=window_s)
    recent = [e for e in await records.list_executions(limit=1000) if e.started_at >= since]
    pending = await records.list_approvals(status="pending", limit=1000)
    by_status = Counter(e.status for e in recent)
    failed = by_status.get("failed", 0)
    return {
        "status": "degraded" if recent and failed / len(recent) > 0.5 else "ok",
        "records": records.where.split(" at ")[0].split(" file ")[0],
        "window_s": window_s,
        "executions": dict(by_status),
        "pending_approvals": len(pending),
    }
