"""Health figures from known executions, on both storage profiles, and `keel health`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from keel.cli import app
from keel.observability.health import HealthThresholds, compute_health
from keel.records import Execution, Records
from keel.settings import Settings

NOW = datetime(2001, 2, 3, 12, 0, tzinfo=UTC)  # far from other tests' rows in the shared database


def _ex(n: int, status: str, ms: int | None, used=(), failed=(), cost="0", age_min: float = 5) -> Execution:
    return Execution(
        execution_id=f"health-{n}-{status}-{id(object())}",
        thread_id=f"t{n}",
        user_id="alice",
        role="user",
        tenant="default",
        version="v1",
        task="t",
        status=status,  # type: ignore[arg-type]
        started_at=NOW - timedelta(minutes=age_min),
        duration_ms=ms,
        tools_used=used,
        tools_failed=failed,
        cost=Decimal(cost),
        succeeded=status == "succeeded" if status in ("succeeded", "terminated", "failed") else None,
    )


async def test_health_figures_match_hand_computed_values(settings: Settings):
    records = Records.from_url(settings.records_url)
    await records.setup()
    try:
        for ex in (
            _ex(1, "succeeded", 1000, ("read_file", "write_file"), (), "0.01"),
            _ex(2, "succeeded", 2000, ("read_file",), ("delete_file",), "0.02"),
            _ex(3, "terminated", 4000, (), ("send_email", "send_email"), "0.03"),
            _ex(4, "failed", 10_000, ("read_file",), (), "0.005"),
            _ex(5, "awaiting_approval", None, (), (), "0.001"),
            _ex(6, "succeeded", 500, ("read_file",), (), "9", age_min=120),  # outside the window
        ):
            await records.start_execution(ex)
        report = await compute_health(records, window=timedelta(minutes=60), now=NOW)
        lenient = HealthThresholds(
            success_degraded=0.4,
            success_unhealthy=0.3,
            tool_failure_degraded=0.5,
            tool_failure_unhealthy=0.6,
            p95_degraded_s=20,
            p95_unhealthy_s=30,
        )
        healthy = await compute_health(records, window=timedelta(minutes=60), now=NOW, thresholds=lenient)
        empty = await compute_health(records, window=timedelta(minutes=1), now=NOW - timedelta(days=1))
    finally:
        await records.close()
    assert report.total_executions == 5 and report.finished_executions == 4 and report.succeeded == 2
    assert report.success_rate == pytest.approx(2 / 4)
    assert report.avg_duration_s == pytest.approx((1 + 2 + 4 + 10) / 4)
    assert report.p95_duration_s == pytest.approx(10.0)  # nearest rank: ceil(0.95 * 4) = 4th of 4
    assert (report.tool_calls, report.tool_failures) == (7, 3)
    assert report.tool_failure_rate == pytest.approx(3 / 7)
    assert report.cost_usd == Decimal("0.066")
    assert report.status == "unhealthy"
    assert any("success rate 0.5 is below 0.8" in r for r in report.reasons)
    assert any("tool failure rate" in r for r in report.reasons)
    body = report.as_dict()
    assert (
        body["status"] == "unhealthy" and body["cost_usd"] == "0.06600000" and body["total_executions"] == 5
    )
    json.dumps(body)
    assert healthy.status == "healthy" and healthy.reasons == ()
    assert empty.total_executions == 0 and empty.status == "healthy" and empty.success_rate is None


def test_keel_health_cli(tmp_path: Path):
    runner = CliRunner()
    env = {"KEEL_HOME": str(tmp_path / "home")}
    result = runner.invoke(app, ["health", "--window", "2h", "--json"], env=env)
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["status"] == "healthy" and body["window_s"] == 7200 and body["total_executions"] == 0
    assert body["long_term_memories"] == 0
    assert runner.invoke(app, ["run", "list ~", "--user", "alice"], env=env).exit_code == 0
    after = json.loads(runner.invoke(app, ["health", "--json"], env=env).stdout)
    assert (after["total_executions"], after["long_term_memories"]) == (1, 1)
    table = runner.invoke(app, ["health"], env=env)
    assert table.exit_code == 0 and "healthy over the last 60m" in table.stdout
    bad = runner.invoke(app, ["health", "--window", "soon"], env=env)
    assert bad.exit_code == 1 and "invalid window 'soon'" in bad.output
